"""The learning agent: regime, policy, reward, learning gates, persisted state."""
