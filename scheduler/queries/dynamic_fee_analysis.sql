-- clmmd query: dynamic_fee_analysis
-- Fees the pool earned over the lookback window (dex.trades volume x the pool's fee tier) and
-- their annualised yield on the USD value of the in-range liquidity (spread over +-10 %
-- around the current price, as pool_health_score values it).
WITH pool AS (
    SELECT p.pool, p.token0, p.token1, p.fee, t0.decimals AS decimals0, t1.decimals AS decimals1
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
        max_by(CAST(liquidity AS DOUBLE), evt_block_number * 100000 + evt_index) AS liquidity
    FROM uniswap_v3_ethereum.Pair_evt_Swap
    WHERE contract_address = {{pool_address}}
      AND evt_block_time > now() - {{lookback}}
),
active AS (
    SELECT
        s.liquidity * (1 / s.sqrt_price - 1 / (s.sqrt_price * sqrt(1.1)))
            / power(10, pool.decimals0) * p0.price_usd
        + s.liquidity * (s.sqrt_price - s.sqrt_price * sqrt(0.9))
            / power(10, pool.decimals1) * p1.price_usd AS active_liquidity_usd
    FROM last_swap AS s
    CROSS JOIN pool
    LEFT JOIN token_prices AS p0 ON p0.contract_address = pool.token0
    LEFT JOIN token_prices AS p1 ON p1.contract_address = pool.token1
),
volume AS (
    SELECT coalesce(sum(amount_usd), 0) AS volume_usd
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND project_contract_address = {{pool_address}}
      AND block_time > now() - {{lookback}}
)
SELECT
    pool.fee AS fee_pips,
    volume.volume_usd,
    volume.volume_usd * pool.fee / 1e6 AS fees_usd,
    100 * (volume.volume_usd * pool.fee / 1e6) * (24 * 365 / {{lookback_hours}})
        / nullif(active.active_liquidity_usd, 0) AS fee_apr_pct
FROM pool
CROSS JOIN volume
CROSS JOIN active
