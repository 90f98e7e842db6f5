-- clmmd query: fee_revenue_leaderboard
-- The 20 Uniswap V3 pools on Ethereum that earned their LPs the most fees over the last
-- 7 days (dex.trades volume x the pool's fee tier).
WITH volumes AS (
    SELECT project_contract_address AS pool, max(token_pair) AS token_pair, sum(amount_usd) AS volume_usd
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND project = 'uniswap'
      AND version = '3'
      AND block_time > now() - INTERVAL '7' DAY
    GROUP BY project_contract_address
)
SELECT
    lower(to_hex(v.pool)) AS pool_address,
    v.token_pair,
    pc.fee AS fee_pips,
    v.volume_usd,
    v.volume_usd * pc.fee / 1e6 AS fees_usd
FROM volumes AS v
INNER JOIN uniswap_v3_ethereum.Factory_evt_PoolCreated AS pc ON pc.pool = v.pool
ORDER BY fees_usd DESC
LIMIT 20
