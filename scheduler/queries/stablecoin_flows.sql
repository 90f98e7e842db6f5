-- clmmd query: stablecoin_flows
-- USDC, USDT and DAI moving into and out of centralised exchanges' Ethereum addresses
-- (Spellbook's cex.addresses) over the last 24 hours, one row per stablecoin. Net inflow to
-- exchanges often precedes buying pressure; net outflow, the opposite.
WITH stables AS (
    SELECT contract_address, symbol, decimals
    FROM tokens.erc20
    WHERE blockchain = 'ethereum'
      AND contract_address IN (
          0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48,
          0xdac17f958d2ee523a2206206994597c13d831ec7,
          0x6b175474e89094c44da98b954eedeac495271d0f
      )
),
cex AS (
    SELECT DISTINCT address
    FROM cex.addresses
    WHERE blockchain = 'ethereum'
),
moves AS (
    SELECT
        s.symbol,
        CAST(t.value AS DOUBLE) / power(10, s.decimals) AS amount,
        t.to IN (SELECT address FROM cex) AS to_cex,
        t."from" IN (SELECT address FROM cex) AS from_cex
    FROM erc20_ethereum.evt_Transfer AS t
    INNER JOIN stables AS s ON s.contract_address = t.contract_address
    WHERE t.evt_block_time > now() - INTERVAL '24' HOUR
)
SELECT
    symbol,
    sum(CASE WHEN to_cex AND NOT from_cex THEN amount ELSE 0 END) AS cex_inflow_usd,
    sum(CASE WHEN from_cex AND NOT to_cex THEN amount ELSE 0 END) AS cex_outflow_usd,
    sum(CASE WHEN to_cex AND NOT from_cex THEN amount WHEN from_cex AND NOT to_cex THEN -amount ELSE 0 END)
        AS net_cex_flow_usd
FROM moves
GROUP BY symbol
ORDER BY symbol
