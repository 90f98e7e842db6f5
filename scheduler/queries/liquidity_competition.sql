-- clmmd query: liquidity_competition
-- Who provides liquidity: distinct LP accounts (the transaction senders of Mint events) over
-- the lookback window and the share of minted liquidity the ten largest of them added.
WITH mints AS (
    SELECT tx."from" AS lp, CAST(m.amount AS DOUBLE) AS liquidity
    FROM uniswap_v3_ethereum.Pair_evt_Mint AS m
    INNER JOIN ethereum.transactions AS tx
        ON tx.hash = m.evt_tx_hash
        AND tx.block_number = m.evt_block_number
        AND tx.block_time > now() - {{lookback}}
    WHERE m.contract_address = {{pool_address}}
      AND m.evt_block_time > now() - {{lookback}}
),
per_lp AS (
    SELECT lp, sum(liquidity) AS liquidity,
           row_number() OVER (ORDER BY sum(liquidity) DESC) AS rank_by_size
    FROM mints
    GROUP BY lp
),
burns AS (
    SELECT count(*) AS burns
    FROM uniswap_v3_ethereum.Pair_evt_Burn
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
      AND amount > 0
)
SELECT
    count(*) AS lp_count,
    coalesce(sum(CASE WHEN rank_by_size <= 10 THEN liquidity END) / nullif(sum(liquidity), 0), 0)
        AS top10_share,
    (SELECT count(*) FROM mints) AS mints,
    (SELECT burns FROM burns) AS burns
FROM per_lp
