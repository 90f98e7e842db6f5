-- clmmd query: range_efficiency
-- How LPs set their ranges: the median width (in per cent of price) of the positions minted
-- over the lookback window and the share of them whose range contains the current tick.
WITH positions AS (
    SELECT tickLower, tickUpper
    FROM uniswap_v3_ethereum.Pair_evt_Mint
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
      AND amount > 0
),
now_tick AS (
    SELECT max_by(tick, evt_block_number * 100000 + evt_index) AS tick
    FROM uniswap_v3_ethereum.Pair_evt_Swap
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - INTERVAL '1' DAY
)
SELECT
    approx_percentile(100 * (power(1.0001, tickUpper - tickLower) - 1), 0.5) AS median_width_pct,
    100 * avg(CASE WHEN now_tick.tick >= tickLower AND now_tick.tick < tickUpper THEN 1.0 ELSE 0.0 END)
        AS in_range_pct,
    count(*) AS positions
FROM positions
CROSS JOIN now_tick
