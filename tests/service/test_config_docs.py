from pathlib import Path

from clmmd.service.config_docs import DESCRIPTIONS, render_reference, variables

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_variable_is_described() -> None:
    assert {v for v, _, _ in variables()} == set(DESCRIPTIONS)


def test_configuration_doc_is_generated_from_the_model() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/configuration.md is stale: python -m service.config_docs > docs/configuration.md"
    )
