-- clmmd query: pool_swaps
-- The pool's raw Swap events in [start_time, end_time), in the event's own columns, for replay.
-- int256/uint160/uint128 values are returned as decimal strings (CAST ... AS VARCHAR): a JSON
-- number would lose digits past 2^53 and Trino's BIGINT/DECIMAL(38) cannot hold every uint160.
-- Ordered by (block_number, log_index), the order the pool applied them.
SELECT
    evt_block_time AS block_time,
    evt_block_number AS block_number,
    evt_index AS log_index,
    evt_tx_hash AS tx_hash,
    CAST(amount0 AS VARCHAR) AS amount0,
    CAST(amount1 AS VARCHAR) AS amount1,
    CAST(sqrtPriceX96 AS VARCHAR) AS sqrt_price_x96,
    CAST(liquidity AS VARCHAR) AS liquidity,
    tick
FROM uniswap_v3_ethereum.Pair_evt_Swap
WHERE contract_address = {{pool_address}}
  AND evt_block_time >= {{start_time}}
  AND evt_block_time < {{end_time}}
ORDER BY evt_block_number, evt_index
