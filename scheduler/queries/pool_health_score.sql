-- clmmd query: pool_health_score
-- The pool's state over the lookback window, from its own Swap events: the USD price of its
-- volatile token (token0 unless token0 is a USD stablecoin, then token1), realised daily
-- volatility (sum of squared log returns between swaps, scaled to a day), 24 h volume from
-- dex.trades, the USD value of its in-range liquidity spread over +-10 % around the current
-- price (the simulator's definition of active liquidity), and a 0-100 health score:
-- 50 points for depth against a day's volume, 50 points for calm (volatility below 10 %/day).
WITH pool AS (
    SELECT p.pool, p.token0, p.token1, t0.decimals AS decimals0, t1.decimals AS decimals1
    FROM uniswap_v3_ethereum.Factory_evt_PoolCreated AS p
    LEFT JOIN tokens.erc20 AS t0 ON t0.blockchain = 'ethereum' AND t0.contract_address = p.token0
    LEFT JOIN tokens.erc20 AS t1 ON t1.blockchain = 'ethereum' AND t1.contract_address = p.token1
    WHERE p.pool = {{pool_address}}
),
token_prices AS (
    SELECT contract_address, max_by(price, minute) AS price_usd
    FROM prices.usd
    WHERE blockchain = 'ethereum'
      AND minute > now() - INTERVAL '1' DAY
      AND contract_address IN (SELECT token0 FROM pool UNION ALL SELECT token1 FROM pool)
    GROUP BY contract_address
),
swaps AS (
    SELECT
        evt_block_time,
        CAST(sqrtPriceX96 AS DOUBLE) / power(2, 96) AS sqrt_price,
        CAST(liquidity AS DOUBLE) AS liquidity,
        2 * ln(CAST(sqrtPriceX96 AS DOUBLE) / lag(CAST(sqrtPriceX96 AS DOUBLE))
            OVER (ORDER BY evt_block_number, evt_index)) AS log_return,
        row_number() OVER (ORDER BY evt_block_number DESC, evt_index DESC) AS recency
    FROM uniswap_v3_ethereum.Pair_evt_Swap
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
),
latest AS (
    SELECT
        s.sqrt_price,
        s.liquidity,
        power(s.sqrt_price, 2) * power(10, pool.decimals0 - pool.decimals1) AS price0_in_1,
        pool.decimals0,
        pool.decimals1,
        p0.price_usd AS price0_usd,
        p1.price_usd AS price1_usd
    FROM swaps AS s
    CROSS JOIN pool
    LEFT JOIN token_prices AS p0 ON p0.contract_address = pool.token0
    LEFT JOIN token_prices AS p1 ON p1.contract_address = pool.token1
    WHERE s.recency = 1
),
stats AS (
    SELECT
        sqrt(sum(power(log_return, 2)) * 24 / {{lookback_hours}}) AS volatility_daily,
        count(*) AS swap_count
    FROM swaps
),
volume AS (
    SELECT coalesce(sum(amount_usd), 0) AS volume_usd_24h
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND project_contract_address = {{pool_address}}
      AND block_time > now() - INTERVAL '24' HOUR
),
valued AS (
    SELECT
        CASE
            WHEN abs(latest.price0_usd - 1) < 0.05 THEN latest.price0_usd / latest.price0_in_1
            ELSE latest.price0_in_1 * latest.price1_usd
        END AS price_usd,
        latest.liquidity * (1 / latest.sqrt_price - 1 / (latest.sqrt_price * sqrt(1.1)))
            / power(10, latest.decimals0) * latest.price0_usd
        + latest.liquidity * (latest.sqrt_price - latest.sqrt_price * sqrt(0.9))
            / power(10, latest.decimals1) * latest.price1_usd AS active_liquidity_usd
    FROM latest
)
SELECT
    lower(to_hex({{pool_address}})) AS pool_address,
    valued.price_usd,
    stats.volatility_daily,
    volume.volume_usd_24h,
    valued.active_liquidity_usd,
    stats.swap_count,
    round(
        50 * least(1.0, valued.active_liquidity_usd / greatest(volume.volume_usd_24h, 1.0))
        + 50 * greatest(0.0, 1 - stats.volatility_daily / 0.10),
        1
    ) AS health_score
FROM stats
CROSS JOIN volume
LEFT JOIN valued ON TRUE
