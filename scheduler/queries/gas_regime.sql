-- clmmd query: gas_regime
-- Gas over the last 30 minutes of Ethereum blocks: the median price paid per gas, the mean
-- base fee, the latest WETH price, and the regime the agent buckets them into
-- (low < 15 gwei <= normal < 40 gwei <= high, on the median paid price).
WITH blocks AS (
    SELECT avg(CAST(base_fee_per_gas AS DOUBLE)) / 1e9 AS base_fee_gwei
    FROM ethereum.blocks
    WHERE time > now() - INTERVAL '30' MINUTE
),
paid AS (
    SELECT approx_percentile(CAST(gas_price AS DOUBLE), 0.5) / 1e9 AS gas_price_gwei
    FROM ethereum.transactions
    WHERE block_time > now() - INTERVAL '30' MINUTE
      AND success
),
eth AS (
    SELECT max_by(price, minute) AS eth_price_usd
    FROM prices.usd
    WHERE blockchain = 'ethereum'
      AND contract_address = 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2
      AND minute > now() - INTERVAL '1' DAY
)
SELECT
    paid.gas_price_gwei,
    blocks.base_fee_gwei,
    eth.eth_price_usd,
    CASE
        WHEN paid.gas_price_gwei < 15 THEN 'low'
        WHEN paid.gas_price_gwei < 40 THEN 'normal'
        ELSE 'high'
    END AS regime
FROM paid
CROSS JOIN blocks
CROSS JOIN eth
