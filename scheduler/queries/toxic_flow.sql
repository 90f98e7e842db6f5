-- clmmd query: toxic_flow
-- Informed ("toxic") order flow: the share of the pool's swap volume over the lookback window
-- whose 5-minute markout went the trader's way (the pool price kept moving in the direction of
-- the trade, so the LPs sold too cheaply). In Uniswap V3 the price is token1 per token0: a
-- trade that takes token0 out of the pool (amount0 < 0) is informed when the price then rises.
WITH swaps AS (
    SELECT
        s.evt_block_time,
        s.evt_tx_hash,
        s.evt_index,
        CAST(s.sqrtPriceX96 AS DOUBLE) AS sqrt_price,
        CASE WHEN s.amount0 < 0 THEN 1 ELSE -1 END AS direction
    FROM uniswap_v3_ethereum.Pair_evt_Swap AS s
    WHERE s.contract_address = {{pool_address}}
      AND s.evt_block_time > now() - {{lookback}} - INTERVAL '5' MINUTE
),
minute_prices AS (
    SELECT date_trunc('minute', evt_block_time) AS minute,
           max_by(sqrt_price, evt_block_time) AS sqrt_price
    FROM swaps
    GROUP BY 1
),
marked AS (
    SELECT
        s.evt_tx_hash,
        s.evt_index,
        s.direction * (ln(later.sqrt_price) - ln(s.sqrt_price)) AS markout
    FROM swaps AS s
    INNER JOIN minute_prices AS later
        ON later.minute = date_trunc('minute', s.evt_block_time) + INTERVAL '5' MINUTE
    WHERE s.evt_block_time > now() - {{lookback}}
),
valued AS (
    SELECT m.markout, t.amount_usd
    FROM marked AS m
    INNER JOIN dex.trades AS t
        ON t.blockchain = 'ethereum'
        AND t.tx_hash = m.evt_tx_hash
        AND t.evt_index = m.evt_index
        AND t.block_time > now() - {{lookback}}
)
SELECT
    coalesce(sum(CASE WHEN markout > 0 THEN amount_usd ELSE 0 END) / nullif(sum(amount_usd), 0), 0)
        AS toxic_share,
    coalesce(sum(CASE WHEN markout > 0 THEN amount_usd ELSE 0 END), 0) AS informed_volume_usd,
    coalesce(sum(amount_usd), 0) AS volume_usd,
    count(*) AS swaps
FROM valued
