-- clmmd query: bridge_flows
-- USD bridged between Ethereum and each other chain over the last 24 hours (Spellbook's
-- bridges_evms.deposits, deposits side): into Ethereum, out of it, and the net.
SELECT
    CASE WHEN deposit_chain = 'ethereum' THEN withdrawal_chain ELSE deposit_chain END AS other_chain,
    sum(CASE WHEN withdrawal_chain = 'ethereum' THEN deposit_amount_usd ELSE 0 END) AS inflow_usd,
    sum(CASE WHEN deposit_chain = 'ethereum' THEN deposit_amount_usd ELSE 0 END) AS outflow_usd,
    sum(CASE WHEN withdrawal_chain = 'ethereum' THEN deposit_amount_usd ELSE -deposit_amount_usd END)
        AS net_inflow_usd
FROM bridges_evms.deposits
WHERE block_time > now() - INTERVAL '24' HOUR
  AND (deposit_chain = 'ethereum' OR withdrawal_chain = 'ethereum')
  AND deposit_amount_usd IS NOT NULL
GROUP BY 1
ORDER BY abs(sum(CASE WHEN withdrawal_chain = 'ethereum' THEN deposit_amount_usd ELSE -deposit_amount_usd END)) DESC
