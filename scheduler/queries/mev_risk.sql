-- clmmd query: mev_risk
-- Sandwich attacks on the pool over the lookback window: the share of its trades that were
-- sandwich victims (Spellbook's dex.sandwiched) and the victims' USD volume.
WITH victims AS (
    SELECT count(*) AS sandwiched_trades, coalesce(sum(amount_usd), 0) AS sandwiched_volume_usd
    FROM dex.sandwiched
    WHERE blockchain = 'ethereum'
      AND project_contract_address = {{pool_address}}
      AND block_time > now() - {{lookback}}
),
trades AS (
    SELECT count(*) AS trades
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND project_contract_address = {{pool_address}}
      AND block_time > now() - {{lookback}}
)
SELECT
    coalesce(CAST(victims.sandwiched_trades AS DOUBLE) / nullif(trades.trades, 0), 0) AS sandwich_rate,
    victims.sandwiched_volume_usd,
    victims.sandwiched_trades,
    trades.trades
FROM victims
CROSS JOIN trades
