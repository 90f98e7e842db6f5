-- clmmd query: regime_history
-- The agent's regime inputs per day over the last 90 days, for offline training: mean base
-- fee and its gas bucket (as gas_regime buckets), and WETH's realised daily volatility from
-- hourly prices and its bucket (low < 2 % <= mid < 5 % <= high, as the agent buckets it).
WITH gas AS (
    SELECT CAST(date_trunc('day', time) AS DATE) AS day, avg(CAST(base_fee_per_gas AS DOUBLE)) / 1e9 AS base_fee_gwei
    FROM ethereum.blocks
    WHERE time > now() - INTERVAL '90' DAY
    GROUP BY 1
),
hourly AS (
    SELECT date_trunc('hour', minute) AS hour, max_by(price, minute) AS price
    FROM prices.usd
    WHERE blockchain = 'ethereum'
      AND contract_address = 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2
      AND minute > now() - INTERVAL '90' DAY
    GROUP BY 1
),
vol AS (
    SELECT CAST(date_trunc('day', hour) AS DATE) AS day, sqrt(sum(power(r, 2))) AS volatility_daily
    FROM (SELECT hour, ln(price / lag(price) OVER (ORDER BY hour)) AS r FROM hourly) AS returns
    GROUP BY 1
)
SELECT
    gas.day,
    gas.base_fee_gwei,
    CASE WHEN gas.base_fee_gwei < 15 THEN 'low' WHEN gas.base_fee_gwei < 40 THEN 'normal' ELSE 'high' END
        AS gas_regime,
    vol.volatility_daily,
    CASE WHEN vol.volatility_daily < 0.02 THEN 'low' WHEN vol.volatility_daily < 0.05 THEN 'mid' ELSE 'high' END
        AS vol_regime
FROM gas
LEFT JOIN vol ON vol.day = gas.day
ORDER BY gas.day
