-- clmmd query: volatility_surface
-- WETH's realised volatility term structure (not implied: Dune has no options data): daily
-- volatility estimated from minute prices over the last 1 h, 6 h, 24 h, 7 d and 30 d, one row
-- per horizon (sum of squared one-minute log returns, scaled to a day).
WITH minutes AS (
    SELECT minute, price
    FROM prices.usd
    WHERE blockchain = 'ethereum'
      AND contract_address = 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2
      AND minute > now() - INTERVAL '30' DAY
),
returns AS (
    SELECT minute, ln(price / lag(price) OVER (ORDER BY minute)) AS r
    FROM minutes
),
horizons (horizon, hours) AS (
    VALUES ('1h', 1), ('6h', 6), ('24h', 24), ('7d', 168), ('30d', 720)
)
SELECT
    h.horizon,
    h.hours,
    sqrt(sum(power(r.r, 2)) * 24 / h.hours) AS realized_vol_daily,
    count(r.r) AS samples
FROM horizons AS h
INNER JOIN returns AS r ON r.minute > now() - h.hours * INTERVAL '1' HOUR
GROUP BY h.horizon, h.hours
ORDER BY h.hours
