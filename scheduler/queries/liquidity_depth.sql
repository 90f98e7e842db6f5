-- clmmd query: liquidity_depth
-- USD value of the liquidity within +-1 % and +-2 % of the current price. Approximation: the
-- in-range liquidity of the latest swap is taken as constant across the band (exact within the
-- current tick's neighbourhood; positions ending inside the band are not subtracted).
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
last_swap AS (
    SELECT
        max_by(CAST(sqrtPriceX96 AS DOUBLE), evt_block_number * 100000 + evt_index) / power(2, 96) AS sqrt_price,
        max_by(CAST(liquidity AS DOUBLE), evt_block_number * 100000 + evt_index) AS liquidity,
        max_by(tick, evt_block_number * 100000 + evt_index) AS tick
    FROM uniswap_v3_ethereum.Pair_evt_Swap
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
),
priced AS (
    SELECT
        s.sqrt_price,
        s.liquidity,
        s.tick,
        p0.price_usd / power(10, pool.decimals0) AS usd_per_raw0,
        p1.price_usd / power(10, pool.decimals1) AS usd_per_raw1
    FROM last_swap AS s
    CROSS JOIN pool
    LEFT JOIN token_prices AS p0 ON p0.contract_address = pool.token0
    LEFT JOIN token_prices AS p1 ON p1.contract_address = pool.token1
)
SELECT
    liquidity * (1 / sqrt_price - 1 / (sqrt_price * sqrt(1.01))) * usd_per_raw0
        + liquidity * (sqrt_price - sqrt_price * sqrt(0.99)) * usd_per_raw1 AS depth_usd_1pct,
    liquidity * (1 / sqrt_price - 1 / (sqrt_price * sqrt(1.02))) * usd_per_raw0
        + liquidity * (sqrt_price - sqrt_price * sqrt(0.98)) * usd_per_raw1 AS depth_usd_2pct,
    tick AS current_tick
FROM priced
