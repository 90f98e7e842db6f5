"""The daemon: configuration, logging, lifecycle, episode worker pool, campaign, CLI."""
