"""Offline tools over finished runs: the HTML report, the paired evaluation, the training export."""
