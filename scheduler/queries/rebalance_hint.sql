-- clmmd query: rebalance_hint
-- A range-width suggestion from the pool's recent ticks: twice the realised daily
-- volatility (a +-1 sigma day), in per cent; `recenter` when the current tick has drifted more
-- than two standard deviations of the window's ticks from their mean; `confidence` grows with
-- the number of swaps seen (100 or more: 1.0).
WITH swaps AS (
    SELECT
        tick,
        2 * ln(CAST(sqrtPriceX96 AS DOUBLE) / lag(CAST(sqrtPriceX96 AS DOUBLE))
            OVER (ORDER BY evt_block_number, evt_index)) AS log_return,
        row_number() OVER (ORDER BY evt_block_number DESC, evt_index DESC) AS recency
    FROM uniswap_v3_ethereum.Pair_evt_Swap
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
),
stats AS (
    SELECT
        sqrt(sum(power(log_return, 2)) * 24 / {{lookback_hours}}) AS volatility_daily,
        avg(CAST(tick AS DOUBLE)) AS mean_tick,
        stddev_samp(CAST(tick AS DOUBLE)) AS tick_stddev,
        max_by(tick, -recency) AS current_tick,
        count(*) AS swap_count
    FROM swaps
)
SELECT
    lower(to_hex({{pool_address}})) AS pool_address,
    round(greatest(0.5, 200 * volatility_daily), 2) AS suggested_width_pct,
    coalesce(abs(current_tick - mean_tick) > 2 * tick_stddev, FALSE) AS recenter,
    least(1.0, swap_count / 100.0) AS confidence
FROM stats
