"""The configuration reference (docs/configuration.md), generated from the settings model.

A test compares the file with :func:`render_reference`, so the docs cannot drift from the code.
Regenerate with ``python -m clmmd.service.config_docs > docs/configuration.md``.
"""

from __future__ import annotations

from pydantic import AliasChoices

from clmmd.service.config import SECRET_FIELDS, Settings


def variables() -> list[tuple[str, str, object]]:
    """(variable, field name, default) for every setting, in model order."""
    out = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variable = str(alias.choices[0]) if isinstance(alias, AliasChoices) else name.upper()
        out.append((variable, name, field.get_default(call_default_factory=True)))
    return out


def _default(name: str, value: object) -> str:
    if name in SECRET_FIELDS or value is None:
        return "unset"
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items()) or "(none)"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def render_reference() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `service/config.py` by `python -m clmmd.service.config_docs`; a test keeps",
        "it in step. Sources, highest first: command-line flags, environment variables, a `.env`",
        "file in the working directory, the TOML file named by `CLMMD_CONFIG_FILE` (keys are the",
        "variable names, e.g. `EPISODES = 20`), defaults. Booleans accept true/false/1/0/yes/no",
        "in any case. A bad value stops start-up with one line naming the variable and the",
        "value, exit status 2.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for variable, name, default in variables():
        meaning = Settings.model_fields[name].description
        lines.append(f"| `{variable}` | `{_default(name, default)}` | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
