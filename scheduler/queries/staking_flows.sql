-- clmmd query: staking_flows
-- ETH entering and leaving beacon-chain staking per day over the last 7 days (Spellbook's
-- staking_ethereum.flows): staked, withdrawn (full and partial) and the net.
SELECT
    CAST(date_trunc('day', block_time) AS DATE) AS day,
    coalesce(sum(amount_staked), 0) AS staked_eth,
    coalesce(sum(amount_full_withdrawn), 0) + coalesce(sum(amount_partial_withdrawn), 0) AS withdrawn_eth,
    coalesce(sum(amount_staked), 0) - coalesce(sum(amount_full_withdrawn), 0)
        - coalesce(sum(amount_partial_withdrawn), 0) AS net_staked_eth
FROM staking_ethereum.flows
WHERE block_time > now() - INTERVAL '7' DAY
GROUP BY 1
ORDER BY 1
