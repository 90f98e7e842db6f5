"""``clmmd export --format minari``: the runs' executed episodes as a Minari dataset."""

from __future__ import annotations

import sys
from pathlib import Path

from clmmd.service.config import Settings


def export_minari(
    settings: Settings, runs: list[str] | None, dataset_id: str, root: Path | None
) -> int:
    """Write the dataset; 2 for bad input (id taken or malformed, unknown run, no episode,
    the rl extra missing)."""
    try:
        from clmmd.service.analysis.export_minari import export_minari as write
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        print(f"clmmd export: --format minari needs the rl extra ({exc})", file=sys.stderr)
        return 2
    try:
        report = write(settings.data_dir, runs, dataset_id=dataset_id, root=root)
    except ModuleNotFoundError as exc:
        print(
            f"clmmd export: --format minari needs the rl extra: pip install 'clmmd[rl]' ({exc})",
            file=sys.stderr,
        )
        return 2
    except (ValueError, LookupError) as exc:
        print(f"clmmd export: {exc}", file=sys.stderr)
        return 2
    print(report.summary_line())
    return 0
