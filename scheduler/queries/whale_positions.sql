-- clmmd query: whale_positions
-- The 50 largest liquidity additions on Uniswap V3 (Ethereum) over the last 7 days: who
-- (transaction sender), where, which range, and how much in USD at the minute's price.
WITH mints AS (
    SELECT
        tx."from" AS lp,
        m.contract_address AS pool,
        m.evt_block_time,
        m.tickLower,
        m.tickUpper,
        m.amount0,
        m.amount1
    FROM uniswap_v3_ethereum.Pair_evt_Mint AS m
    INNER JOIN ethereum.transactions AS tx
        ON tx.hash = m.evt_tx_hash AND tx.block_number = m.evt_block_number
        AND tx.block_time > now() - INTERVAL '7' DAY
    WHERE m.evt_block_time > now() - INTERVAL '7' DAY
)
SELECT
    lower(to_hex(m.lp)) AS lp_address,
    lower(to_hex(m.pool)) AS pool_address,
    concat(t0.symbol, '-', t1.symbol) AS token_pair,
    m.tickLower AS tick_lower,
    m.tickUpper AS tick_upper,
    coalesce(CAST(m.amount0 AS DOUBLE) / power(10, t0.decimals) * p0.price, 0)
        + coalesce(CAST(m.amount1 AS DOUBLE) / power(10, t1.decimals) * p1.price, 0) AS amount_usd,
    m.evt_block_time AS block_time
FROM mints AS m
INNER JOIN uniswap_v3_ethereum.Factory_evt_PoolCreated AS pc ON pc.pool = m.pool
LEFT JOIN tokens.erc20 AS t0 ON t0.blockchain = 'ethereum' AND t0.contract_address = pc.token0
LEFT JOIN tokens.erc20 AS t1 ON t1.blockchain = 'ethereum' AND t1.contract_address = pc.token1
LEFT JOIN prices.usd AS p0
    ON p0.blockchain = 'ethereum' AND p0.contract_address = pc.token0
    AND p0.minute = date_trunc('minute', m.evt_block_time)
LEFT JOIN prices.usd AS p1
    ON p1.blockchain = 'ethereum' AND p1.contract_address = pc.token1
    AND p1.minute = date_trunc('minute', m.evt_block_time)
ORDER BY amount_usd DESC
LIMIT 50
