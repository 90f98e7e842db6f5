"""Running episodes and campaigns: the episode runner, its context and pure artifact builders,
the campaign, the metrics-summary writer and the mock-intel warm-up."""
