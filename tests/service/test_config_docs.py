from pathlib import Path

from clmmd.service.config import Settings
from clmmd.service.config_docs import render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_has_a_description() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_configuration_doc_is_generated_from_the_model() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/configuration.md is stale: "
        "python -m clmmd.service.config_docs > docs/configuration.md"
    )
