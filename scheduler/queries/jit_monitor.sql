-- clmmd query: jit_monitor
-- Just-in-time liquidity: a Mint and a Burn of the same tick range in the same block, around
-- swaps. Counts such events over the lookback window and the share of the pool's volume that
-- traded in blocks where JIT liquidity was present.
WITH mints AS (
    SELECT evt_block_number, tickLower, tickUpper, amount
    FROM uniswap_v3_ethereum.Pair_evt_Mint
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
),
burns AS (
    SELECT evt_block_number, tickLower, tickUpper, amount
    FROM uniswap_v3_ethereum.Pair_evt_Burn
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
),
jit AS (
    SELECT DISTINCT m.evt_block_number, m.tickLower, m.tickUpper
    FROM mints AS m
    INNER JOIN burns AS b
        ON b.evt_block_number = m.evt_block_number
        AND b.tickLower = m.tickLower
        AND b.tickUpper = m.tickUpper
        AND b.amount = m.amount
),
volume AS (
    SELECT
        sum(amount_usd) AS volume_usd,
        sum(CASE WHEN block_number IN (SELECT evt_block_number FROM jit) THEN amount_usd ELSE 0 END)
            AS jit_volume_usd
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND project_contract_address = {{pool_address}}
      AND block_time > now() - {{lookback}}
)
SELECT
    coalesce(volume.jit_volume_usd / nullif(volume.volume_usd, 0), 0) AS jit_share,
    (SELECT count(*) FROM jit) AS jit_events,
    coalesce(volume.jit_volume_usd, 0) AS jit_volume_usd
FROM volume
