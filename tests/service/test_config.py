from __future__ import annotations

from pathlib import Path

import pytest

from clmmd.service.cli.main import main
from clmmd.service.config import (
    ConfigError,
    Settings,
    derive_exec_mode,
    load_settings,
    parse_bool,
)


@pytest.mark.parametrize(
    ("hb_env", "mock_clmm", "expected"),
    [
        ("mock", False, "mock"),
        ("mock", True, "mock"),
        ("real", False, "real"),
        ("real", True, "mock"),
    ],
)
def test_exec_mode_derivation_table(hb_env: str, mock_clmm: bool, expected: str) -> None:
    assert derive_exec_mode(hb_env, mock_clmm) == expected  # type: ignore[arg-type]


def test_exec_mode_derived_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HB_ENV", "real")
    assert load_settings().exec_mode == "real"
    monkeypatch.setenv("MOCK_CLMM", "YES")
    assert load_settings().exec_mode == "mock"


def test_explicit_exec_mode_agreeing_with_derivation_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HB_ENV", "real")
    monkeypatch.setenv("EXEC_MODE", "real")
    assert load_settings().exec_mode == "real"


def test_contradicting_exec_mode_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_CLMM", "true")
    monkeypatch.setenv("HB_ENV", "real")
    monkeypatch.setenv("EXEC_MODE", "real")
    with pytest.raises(ConfigError, match=r"EXEC_MODE='real' contradicts the derived mode 'mock'"):
        load_settings()


@pytest.mark.parametrize("text", ["true", "TRUE", "1", "yes", "Yes"])
def test_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "NO"])
def test_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


BAD_VALUES = [
    ("MOCK_CLMM", "maybe", "MOCK_CLMM"),
    ("LEARN_FROM_MOCK", "2", "LEARN_FROM_MOCK"),
    ("HB_ENV", "prod", "HB_ENV"),
    ("EXEC_MODE", "paper", "EXEC_MODE"),
    ("INTEL_DATA_SOURCE", "snowflake", "INTEL_DATA_SOURCE"),
    ("HB_SEED", "abc", "HB_SEED"),
    ("EPISODES", "0", "EPISODES"),
    ("EPISODES", "-3", "EPISODES"),
    ("I_UNDERSTAND_LIVE_RISK", "true", "I_UNDERSTAND_LIVE_RISK"),
    ("I_UNDERSTAND_LIVE_RISK", "YES", "I_UNDERSTAND_LIVE_RISK"),
    ("DUNE_API_BASE_URL", "ftp://x", "DUNE_API_BASE_URL"),
    ("GATEWAY_URL", "localhost:15888", "GATEWAY_URL"),
    ("CLMMD_HTTP_LISTEN", "everywhere", "CLMMD_HTTP_LISTEN"),
    ("CLMMD_HTTP_LISTEN", "127.0.0.1:99999", "CLMMD_HTTP_LISTEN"),
    ("CLMMD_POOLS", "0x1234", "CLMMD_POOLS"),
    ("CLMMD_EPISODE_WORKERS", "0", "CLMMD_EPISODE_WORKERS"),
    ("CLMMD_RISK_SCALAR", "1.5", "CLMMD_RISK_SCALAR"),
]


@pytest.mark.parametrize(("variable", "value", "named"), BAD_VALUES)
def test_bad_value_exits_2_with_one_line_naming_variable_and_value(
    variable: str,
    value: str,
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data_dir: Path,
) -> None:
    monkeypatch.setenv("EPISODES", "1")
    monkeypatch.setenv(variable, value)
    assert main(["campaign"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert named in err
    assert value in err
    assert not data_dir.exists(), "a bad configuration must not start writing anything"


def test_secret_shown_as_set_or_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().effective()["dune_api_key"] == "NOT SET"
    monkeypatch.setenv("DUNE_API_KEY", "dune-secret-abcdef123456")
    effective = load_settings().effective()
    assert effective["dune_api_key"] == "set"
    assert "dune-secret-abcdef123456" not in repr(effective)
    assert "dune-secret-abcdef123456" not in repr(load_settings())


def test_bad_secret_value_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A secret that fails validation must not be printed back.
    monkeypatch.setenv("DUNE_API_KEY", "x" * 10)
    monkeypatch.setenv("MOCK_CLMM", "nope")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "x" * 10 not in str(caught.value)


def test_config_hash_stable_and_sensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_settings().config_hash()
    assert first == load_settings().config_hash()
    monkeypatch.setenv("HB_SEED", "42")  # the seed is recorded on its own
    assert load_settings().config_hash() == first
    monkeypatch.setenv("LEARN_FROM_MOCK", "true")
    assert load_settings().config_hash() != first


def test_config_hash_does_not_depend_on_secret_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNE_API_KEY", "key-one-123456")
    one = load_settings().config_hash()
    monkeypatch.setenv("DUNE_API_KEY", "key-two-654321")
    assert load_settings().config_hash() == one


def test_toml_file_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "clmmd.toml"
    config.write_text("EPISODES = 7\nHB_SEED = 11\n")
    monkeypatch.setenv("CLMMD_CONFIG_FILE", str(config))
    settings = load_settings()
    assert (settings.episodes, settings.seed) == (7, 11)
    monkeypatch.setenv("EPISODES", "3")
    assert load_settings().episodes == 3


def test_cli_flag_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPISODES", "3")
    assert load_settings(episodes=9).episodes == 9
    assert load_settings(episodes=None).episodes == 3


def test_http_listen_parsing() -> None:
    assert load_settings(http_listen="off").http_listen_address is None
    assert load_settings(http_listen="127.0.0.1:9999").http_listen_address == ("127.0.0.1", 9999)


def test_dune_key_from_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dune_api_key").write_text("cred-key-0123456789\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    key = load_settings().dune_api_key
    assert key is not None and key.get_secret_value() == "cred-key-0123456789"
    monkeypatch.setenv("DUNE_API_KEY", "env-key-0123456789")  # the environment wins
    key = load_settings().dune_api_key
    assert key is not None and key.get_secret_value() == "env-key-0123456789"


# -- issue 13, item 9: strict names, finite numbers, clean secrets, loopback by default ------


@pytest.mark.parametrize("listen", ["127.0.0.1:9321", "localhost:9321", "[::1]:9321", "off"])
def test_loopback_listeners_need_no_permission(
    listen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_HTTP_LISTEN", listen)
    assert load_settings().http_listen_is_loopback


def test_a_remote_listener_is_allowed_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLMMD_HTTP_LISTEN", "0.0.0.0:9321")
    with pytest.raises(ConfigError, match="CLMMD_HTTP_ALLOW_REMOTE=yes"):
        load_settings()
    monkeypatch.setenv("CLMMD_HTTP_ALLOW_REMOTE", "yes")
    assert load_settings().http_listen_address == ("0.0.0.0", 9321)


def test_an_unknown_dotenv_variable_names_the_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("EPISODES=2\n# comment\nexport CLMMD_DRAIN_TIMEOUT=5\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        "invalid configuration: .env:3: unknown variable CLMMD_DRAIN_TIMEOUT "
        "(did you mean CLMMD_DRAIN_TIMEOUT_S?)"
    )


def test_known_toml_keys_in_either_case_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clmmd.toml"
    path.write_text('EPISODES = 3\nclmmd_pool_cap = 5\n"CLMMD_EPISODE_WORKERS" = 2\n')
    monkeypatch.setenv("CLMMD_CONFIG_FILE", str(path))
    settings = load_settings()
    assert (settings.episodes, settings.pool_cap, settings.episode_workers) == (3, 5, 2)


def test_a_secret_with_a_control_character_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "dune-0123456789abcdef"
    monkeypatch.setenv("DUNE_API_KEY", secret + "\r\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "DUNE_API_KEY" in str(raised.value)
    assert secret not in str(raised.value) and "0123" not in str(raised.value)


def test_the_test_harness_switches_are_not_unknown_settings() -> None:
    """CI exports these while it runs clmmd (e.g. CLMMD_REQUIRE_EVM in .ci/run, CLMMD_E2E in
    make e2e); every CLMMD_* name the harness reads must be known, or each clmmd it starts
    would stop at the unknown-variable check."""
    import re

    from clmmd.service.config import OTHER_VARIABLES

    root = Path(__file__).resolve().parents[2]
    texts = [(root / ".ci" / "run").read_text(), (root / "Makefile").read_text()]
    # (bad_inputs and this file misspell variables on purpose)
    texts += [
        p.read_text()
        for p in (root / "tests").rglob("*.py")
        if "bad_inputs" not in p.parts and p.name != "test_config.py"
    ]
    read = set()
    for text in texts:
        read |= set(re.findall(r"environ(?:\.get)?\(\s*\"(CLMMD_[A-Z0-9_]+)\"", text))
        read |= set(re.findall(r"(?:export |^|\s)(CLMMD_[A-Z0-9_]+)=", text, re.M))
    settings = {
        str(f.validation_alias.choices[0])  # type: ignore[union-attr]
        for f in Settings.model_fields.values()
    }
    assert read - settings - OTHER_VARIABLES == set()
