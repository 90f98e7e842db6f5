"""Artifact schemas, the atomic/immutable writer, run layout, summary, validation, recovery.

``clmmd.artifacts.base`` holds the leaves every package shares (the clock, the HTTP retry and
rate-limit policy); it imports nothing else of clmmd.
"""
