"""docs/queries.md is generated from the registry and says what the registry says."""

from __future__ import annotations

import re
from pathlib import Path

from clmmd.scheduler.catalogue import render_catalogue
from clmmd.scheduler.registry import PRIORITIES, load_registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "queries.md"


def test_queries_doc_is_generated_from_the_registry() -> None:
    assert DOC.read_text() == render_catalogue(), (
        "docs/queries.md is stale: python -m clmmd.scheduler.catalogue > docs/queries.md"
    )


def test_every_query_has_one_row_with_its_id_and_default() -> None:
    registry = load_registry()
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    assert len(rows) == len(registry) == 25
    for spec in registry:
        (row,) = [r for r in rows if r.startswith(f"| `{spec.name}`")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == ("on" if spec.enabled_default else "off")
        assert cells[2] == str(spec.query_id)
        assert cells[3] == spec.method
        assert cells[4].count("`") == 2 * max(1, len(spec.windows))


def test_sections_follow_priorities_with_counts() -> None:
    headings = re.findall(
        r"^## (P\d): \w+ \((\d+) queries, (\d+) enabled\)$", DOC.read_text(), re.M
    )
    assert [h[0] for h in headings] == list(PRIORITIES)
    assert [int(h[1]) for h in headings] == [3, 5, 3, 14]
    assert [int(h[2]) for h in headings] == [3, 4, 3, 0]


def test_a_changed_registry_changes_the_doc(tmp_path: Path) -> None:
    shipped = (Path(__file__).resolve().parents[2] / "scheduler" / "queries.toml").read_text()
    changed = tmp_path / "queries.toml"
    changed.write_text(shipped.replace("query_id = 900001", "query_id = 4242"))
    rendered = render_catalogue(load_registry(changed))
    assert rendered != DOC.read_text()
    assert "| `gas_regime` | on | 4242 |" in rendered
