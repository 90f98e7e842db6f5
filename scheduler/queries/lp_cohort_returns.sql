-- clmmd query: lp_cohort_returns
-- LP cohorts on Uniswap V3 (Ethereum) by the month of their first mint in the last 180 days
-- (LP = transaction sender): USD minted, burned and collected, and fees earned as collected
-- minus burned (Collect pays out principal released by Burn plus fees), in per cent of minted.
WITH lp_events AS (
    SELECT tx."from" AS lp, 'mint' AS kind, e.evt_block_time, e.contract_address AS pool, e.amount0, e.amount1
    FROM uniswap_v3_ethereum.Pair_evt_Mint AS e
    INNER JOIN ethereum.transactions AS tx
        ON tx.hash = e.evt_tx_hash AND tx.block_number = e.evt_block_number
        AND tx.block_time > now() - INTERVAL '180' DAY
    WHERE e.evt_block_time > now() - INTERVAL '180' DAY
    UNION ALL
    SELECT tx."from" AS lp, 'burn' AS kind, e.evt_block_time, e.contract_address AS pool, e.amount0, e.amount1
    FROM uniswap_v3_ethereum.Pair_evt_Burn AS e
    INNER JOIN ethereum.transactions AS tx
        ON tx.hash = e.evt_tx_hash AND tx.block_number = e.evt_block_number
        AND tx.block_time > now() - INTERVAL '180' DAY
    WHERE e.evt_block_time > now() - INTERVAL '180' DAY
    UNION ALL
    SELECT tx."from" AS lp, 'collect' AS kind, e.evt_block_time, e.contract_address AS pool, e.amount0, e.amount1
    FROM uniswap_v3_ethereum.Pair_evt_Collect AS e
    INNER JOIN ethereum.transactions AS tx
        ON tx.hash = e.evt_tx_hash AND tx.block_number = e.evt_block_number
        AND tx.block_time > now() - INTERVAL '180' DAY
    WHERE e.evt_block_time > now() - INTERVAL '180' DAY
),
valued AS (
    SELECT
        ev.lp,
        ev.kind,
        ev.evt_block_time,
        coalesce(CAST(ev.amount0 AS DOUBLE) / power(10, t0.decimals) * p0.price, 0)
        + coalesce(CAST(ev.amount1 AS DOUBLE) / power(10, t1.decimals) * p1.price, 0) AS amount_usd
    FROM lp_events AS ev
    INNER JOIN uniswap_v3_ethereum.Factory_evt_PoolCreated AS pc ON pc.pool = ev.pool
    LEFT JOIN tokens.erc20 AS t0 ON t0.blockchain = 'ethereum' AND t0.contract_address = pc.token0
    LEFT JOIN tokens.erc20 AS t1 ON t1.blockchain = 'ethereum' AND t1.contract_address = pc.token1
    LEFT JOIN prices.usd AS p0
        ON p0.blockchain = 'ethereum' AND p0.contract_address = pc.token0
        AND p0.minute = date_trunc('minute', ev.evt_block_time)
    LEFT JOIN prices.usd AS p1
        ON p1.blockchain = 'ethereum' AND p1.contract_address = pc.token1
        AND p1.minute = date_trunc('minute', ev.evt_block_time)
),
cohorts AS (
    SELECT lp, date_trunc('month', min(evt_block_time)) AS cohort_month
    FROM valued
    WHERE kind = 'mint'
    GROUP BY lp
)
SELECT
    CAST(c.cohort_month AS DATE) AS cohort_month,
    count(DISTINCT c.lp) AS lps,
    sum(CASE WHEN v.kind = 'mint' THEN v.amount_usd ELSE 0 END) AS minted_usd,
    sum(CASE WHEN v.kind = 'burn' THEN v.amount_usd ELSE 0 END) AS burned_usd,
    sum(CASE WHEN v.kind = 'collect' THEN v.amount_usd ELSE 0 END) AS collected_usd,
    100 * (sum(CASE WHEN v.kind = 'collect' THEN v.amount_usd ELSE 0 END)
        - sum(CASE WHEN v.kind = 'burn' THEN v.amount_usd ELSE 0 END))
        / nullif(sum(CASE WHEN v.kind = 'mint' THEN v.amount_usd ELSE 0 END), 0) AS fee_return_pct
FROM cohorts AS c
INNER JOIN valued AS v ON v.lp = c.lp
GROUP BY c.cohort_month
ORDER BY c.cohort_month
