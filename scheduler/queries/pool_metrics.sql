-- clmmd query: pool_metrics
-- Trading activity of the pool over the lookback window (dex.trades): USD volume, fees at the
-- pool's fee tier, trade count, distinct traders (transaction senders), mean trade size.
WITH pool AS (
    SELECT fee
    FROM uniswap_v3_ethereum.Factory_evt_PoolCreated
    WHERE pool = {{pool_address}}
),
trades AS (
    SELECT amount_usd, tx_from
    FROM dex.trades
    WHERE blockchain = 'ethereum'
      AND project_contract_address = {{pool_address}}
      AND block_time > now() - {{lookback}}
)
SELECT
    coalesce(sum(trades.amount_usd), 0) AS volume_usd,
    coalesce(sum(trades.amount_usd), 0) * max(pool.fee) / 1e6 AS fees_usd,
    count(trades.tx_from) AS swap_count,
    count(DISTINCT trades.tx_from) AS unique_traders,
    avg(trades.amount_usd) AS avg_trade_usd
FROM pool
LEFT JOIN trades ON TRUE
