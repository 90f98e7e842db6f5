-- clmmd query: il_tracker
-- Impermanent loss of a full-range position held over the lookback window, 7 and 30 days,
-- from the pool's own price r = P_now / P_then: IL = 2 sqrt(r) / (1 + r) - 1, in per cent
-- (negative: a loss against holding). Concentrated positions lose more; this is the floor.
WITH prices AS (
    SELECT
        max_by(CAST(sqrtPriceX96 AS DOUBLE), evt_block_number * 100000 + evt_index) AS now_sqrt,
        min_by(CAST(sqrtPriceX96 AS DOUBLE), CASE WHEN evt_block_time > now() - {{lookback}}
            THEN evt_block_number * 100000 + evt_index END) AS window_sqrt,
        min_by(CAST(sqrtPriceX96 AS DOUBLE), CASE WHEN evt_block_time > now() - INTERVAL '7' DAY
            THEN evt_block_number * 100000 + evt_index END) AS week_sqrt,
        min_by(CAST(sqrtPriceX96 AS DOUBLE), evt_block_number * 100000 + evt_index) AS month_sqrt
    FROM uniswap_v3_ethereum.Pair_evt_Swap
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - INTERVAL '30' DAY
),
ratios AS (
    SELECT
        power(now_sqrt / window_sqrt, 2) AS r_window,
        power(now_sqrt / week_sqrt, 2) AS r_7d,
        power(now_sqrt / month_sqrt, 2) AS r_30d
    FROM prices
)
SELECT
    100 * (2 * sqrt(r_window) / (1 + r_window) - 1) AS il_pct_window,
    100 * (2 * sqrt(r_7d) / (1 + r_7d) - 1) AS il_pct_7d,
    100 * (2 * sqrt(r_30d) / (1 + r_30d) - 1) AS il_pct_30d,
    100 * (r_7d - 1) AS price_change_pct_7d,
    100 * (r_30d - 1) AS price_change_pct_30d
FROM ratios
