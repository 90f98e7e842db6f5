-- clmmd query: liquidity_migration
-- Where LP capital moved over the last 7 days on Uniswap V3 (Ethereum): per pool, the USD
-- value minted and burned (token amounts at the minute's USD price) and the net flow; the 25
-- pools with the largest net flow either way.
WITH events AS (
    SELECT contract_address AS pool, evt_block_time, amount0, amount1, 1 AS sign
    FROM uniswap_v3_ethereum.Pair_evt_Mint
    WHERE evt_block_time > now() - INTERVAL '7' DAY
    UNION ALL
    SELECT contract_address AS pool, evt_block_time, amount0, amount1, -1 AS sign
    FROM uniswap_v3_ethereum.Pair_evt_Burn
    WHERE evt_block_time > now() - INTERVAL '7' DAY
),
valued AS (
    SELECT
        e.pool,
        e.sign,
        coalesce(CAST(e.amount0 AS DOUBLE) / power(10, t0.decimals) * p0.price, 0)
        + coalesce(CAST(e.amount1 AS DOUBLE) / power(10, t1.decimals) * p1.price, 0) AS amount_usd,
        concat(t0.symbol, '-', t1.symbol) AS token_pair
    FROM events AS e
    INNER JOIN uniswap_v3_ethereum.Factory_evt_PoolCreated AS pc ON pc.pool = e.pool
    LEFT JOIN tokens.erc20 AS t0 ON t0.blockchain = 'ethereum' AND t0.contract_address = pc.token0
    LEFT JOIN tokens.erc20 AS t1 ON t1.blockchain = 'ethereum' AND t1.contract_address = pc.token1
    LEFT JOIN prices.usd AS p0
        ON p0.blockchain = 'ethereum' AND p0.contract_address = pc.token0
        AND p0.minute = date_trunc('minute', e.evt_block_time)
    LEFT JOIN prices.usd AS p1
        ON p1.blockchain = 'ethereum' AND p1.contract_address = pc.token1
        AND p1.minute = date_trunc('minute', e.evt_block_time)
)
SELECT
    lower(to_hex(pool)) AS pool_address,
    max(token_pair) AS token_pair,
    sum(CASE WHEN sign > 0 THEN amount_usd ELSE 0 END) AS minted_usd,
    sum(CASE WHEN sign < 0 THEN amount_usd ELSE 0 END) AS burned_usd,
    sum(sign * amount_usd) AS net_flow_usd
FROM valued
GROUP BY pool
ORDER BY abs(sum(sign * amount_usd)) DESC
LIMIT 25
