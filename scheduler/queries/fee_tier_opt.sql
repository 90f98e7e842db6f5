-- clmmd query: fee_tier_opt
-- Every Uniswap V3 pool of the same token pair, one row per fee tier: its share of the pair's
-- volume over the lookback window, its fees, and their annualised yield on the in-range
-- liquidity's USD value (+-10 % band, as pool_health_score values it).
WITH pair AS (
    SELECT token0, token1
    FROM uniswap_v3_ethereum.Factory_evt_PoolCreated
    WHERE pool = {{pool_address}}
),
tiers AS (
    SELECT p.pool, p.fee, p.token0, p.token1, t0.decimals AS decimals0, t1.decimals AS decimals1
    FROM uniswap_v3_ethereum.Factory_evt_PoolCreated AS p
    INNER JOIN pair ON pair.token0 = p.token0 AND pair.token1 = p.token1
    LEFT JOIN tokens.erc20 AS t0 ON t0.blockchain = 'ethereum' AND t0.contract_address = p.token0
    LEFT JOIN tokens.erc20 AS t1 ON t1.blockchain = 'ethereum' AND t1.contract_address = p.token1
),
token_prices AS (
    SELECT contract_address, max_by(price, minute) AS price_usd
    FROM prices.usd
    WHERE blockchain = 'ethereum'
      AND minute > now() - INTERVAL '1' DAY
      AND contract_address IN (SELECT token0 FROM pair UNION ALL SELECT token1 FROM pair)
    GROUP BY contract_address
),
volumes AS (
    SELECT project_contract_address AS pool, sum(amount_usd) AS volume_usd
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND project_contract_address IN (SELECT pool FROM tiers)
      AND block_time > now() - {{lookback}}
    GROUP BY project_contract_address
),
last_swaps AS (
    SELECT
        contract_address AS pool,
        max_by(CAST(sqrtPriceX96 AS DOUBLE), evt_block_number * 100000 + evt_index) / power(2, 96) AS sqrt_price,
        max_by(CAST(liquidity AS DOUBLE), evt_block_number * 100000 + evt_index) AS liquidity
    FROM uniswap_v3_ethereum.Pair_evt_Swap
    WHERE contract_address IN (SELECT pool FROM tiers)
      AND evt_block_time > now() - {{lookback}}
    GROUP BY contract_address
),
per_tier AS (
    SELECT
        tiers.fee,
        tiers.pool,
        coalesce(volumes.volume_usd, 0) AS volume_usd,
        s.liquidity * (1 / s.sqrt_price - 1 / (s.sqrt_price * sqrt(1.1)))
            / power(10, tiers.decimals0) * p0.price_usd
        + s.liquidity * (s.sqrt_price - s.sqrt_price * sqrt(0.9))
            / power(10, tiers.decimals1) * p1.price_usd AS active_liquidity_usd
    FROM tiers
    LEFT JOIN volumes ON volumes.pool = tiers.pool
    LEFT JOIN last_swaps AS s ON s.pool = tiers.pool
    LEFT JOIN token_prices AS p0 ON p0.contract_address = tiers.token0
    LEFT JOIN token_prices AS p1 ON p1.contract_address = tiers.token1
)
SELECT
    fee AS fee_pips,
    lower(to_hex(pool)) AS pool_address,
    volume_usd,
    volume_usd / nullif(sum(volume_usd) OVER (), 0) AS volume_share,
    volume_usd * fee / 1e6 AS fees_usd,
    100 * (volume_usd * fee / 1e6) * (24 * 365 / {{lookback_hours}})
        / nullif(active_liquidity_usd, 0) AS fee_apr_pct
FROM per_tier
ORDER BY fee
