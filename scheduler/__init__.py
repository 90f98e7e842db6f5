"""Market intelligence: query registry, Dune client, cache with quality, refresh, triggers."""
