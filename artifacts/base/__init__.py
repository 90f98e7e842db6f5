"""Leaves shared by every clmmd package: the injectable clock and the HTTP retry/rate-limit
policy. Nothing here imports anything else of clmmd."""
