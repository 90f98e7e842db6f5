-- clmmd query: cex_dex_spread
-- Hourly gap over the last 24 hours between WETH's volume-weighted price on Ethereum DEXes
-- (dex.trades against USDC/USDT) and its reference USD price in prices.usd, which Dune sources
-- from off-chain (centralised) market data. Positive: the DEX price is above the reference.
WITH dex_fills AS (
    SELECT
        date_trunc('hour', block_time) AS hour,
        amount_usd,
        CASE
            WHEN token_bought_address = 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2 THEN token_bought_amount
            ELSE token_sold_amount
        END AS weth_amount
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND block_time > now() - INTERVAL '24' HOUR
      AND amount_usd > 0
      AND (
          (token_bought_address = 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2
              AND token_sold_address IN (0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48, 0xdac17f958d2ee523a2206206994597c13d831ec7))
          OR (token_sold_address = 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2
              AND token_bought_address IN (0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48, 0xdac17f958d2ee523a2206206994597c13d831ec7))
      )
),
dex_hourly AS (
    SELECT hour, sum(amount_usd) / nullif(sum(weth_amount), 0) AS dex_price_usd, sum(amount_usd) AS volume_usd
    FROM dex_fills
    GROUP BY hour
),
reference AS (
    SELECT date_trunc('hour', minute) AS hour, avg(price) AS reference_price_usd
    FROM prices.usd
    WHERE blockchain = 'ethereum'
      AND contract_address = 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2
      AND minute > now() - INTERVAL '24' HOUR
    GROUP BY 1
)
SELECT
    d.hour,
    d.dex_price_usd,
    r.reference_price_usd,
    10000 * (d.dex_price_usd / r.reference_price_usd - 1) AS spread_bps,
    d.volume_usd
FROM dex_hourly AS d
INNER JOIN reference AS r ON r.hour = d.hour
ORDER BY d.hour
