-- clmmd query: pair_correlation
-- Correlation of hourly log returns over the last 30 days between the majors a WETH LP is
-- exposed to (WETH, WBTC, LINK, UNI on Ethereum; prices.usd), one row per pair.
WITH hourly AS (
    SELECT
        symbol,
        date_trunc('hour', minute) AS hour,
        max_by(price, minute) AS price
    FROM prices.usd
    WHERE blockchain = 'ethereum'
      AND minute > now() - INTERVAL '30' DAY
      AND contract_address IN (
          0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2,
          0x2260fac5e5542a773aa44fbcfedf7c193bc2c599,
          0x514910771af9ca656af840dff83e8264ecf986ca,
          0x1f9840a85d5af5bf1d1762f925bdaddc4201f984
      )
    GROUP BY 1, 2
),
returns AS (
    SELECT symbol, hour, ln(price / lag(price) OVER (PARTITION BY symbol ORDER BY hour)) AS r
    FROM hourly
)
SELECT
    a.symbol AS symbol_a,
    b.symbol AS symbol_b,
    corr(a.r, b.r) AS correlation,
    count(*) AS hours
FROM returns AS a
INNER JOIN returns AS b ON a.hour = b.hour AND a.symbol < b.symbol
WHERE a.r IS NOT NULL AND b.r IS NOT NULL
GROUP BY a.symbol, b.symbol
ORDER BY a.symbol, b.symbol
