"""The daemon side of clmmd: configuration and logging at the top, then

- ``clmmd.service.runs``: running episodes and campaigns (runner, run context, summary writer);
- ``clmmd.service.host``: the daemon host (lifecycle, signals, systemd notify, HTTP endpoint);
- ``clmmd.service.analysis``: offline tools over finished runs (report, evaluation, export);
- ``clmmd.service.cli``: the ``clmmd`` command line.
"""
