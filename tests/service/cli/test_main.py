"""The argument parser: global options on either side of every subcommand, clean help texts."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from clmmd.service.cli.main import build_parser, main

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"

#: The smallest valid arguments of every leaf command (a new command must be added here).
MINIMAL: dict[tuple[str, ...], list[str]] = {
    ("run",): [],
    ("campaign",): [],
    ("runs",): [],
    ("runs", "list"): [],
    ("runs", "show"): [],
    ("runs", "validate"): [],
    ("report",): [],
    ("clean",): ["--keep", "1"],
    ("evaluate",): ["--episodes", "1", "--seed", "1"],
    ("export",): ["--window", "1h", "--out", "x.jsonl"],
    ("sweep",): ["--pools", POOL, "--widths", "policy,5", "--seeds", "1", "--serial"],
    ("registry",): [],
    ("backtest",): [
        "--history",
        "h.csv",
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-02",
        "--width-pct",
        "5",
        "--size-usd",
        "1000",
    ],
    ("history", "import"): ["h.csv"],
    ("history", "fetch"): ["--pool", POOL, "--from", "2024-05-01", "--to", "2024-05-02"],
    ("history", "list"): [],
    ("validate-pool",): ["--proposal-path", "p.json", "--run-id", "r", "--episode-id", "e"],
    ("refresh",): ["--once"],
    ("status",): [],
    ("trigger", "refresh"): ["--reason", "r", "--pool", POOL],
    ("trigger", "episodes"): ["--count", "1"],
}


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[object] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command path with its parser, depth first."""
    sub = _subparsers(parser)
    if sub is None:
        return
    for name, child in sub.choices.items():
        assert isinstance(child, argparse.ArgumentParser)
        yield (*path, name), child
        yield from _commands(child, (*path, name))


COMMANDS = dict(_commands(build_parser()))
LEAVES = [p for p, parser in COMMANDS.items() if p in MINIMAL or _subparsers(parser) is None]


def test_every_command_is_covered_here() -> None:
    leaves = {p for p, parser in COMMANDS.items() if _subparsers(parser) is None}
    assert leaves <= set(MINIMAL), f"add the new commands to MINIMAL: {leaves - set(MINIMAL)}"


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_on_either_side_of_every_command(path: tuple[str, ...], where: str) -> None:
    options = ["--data-dir", "/x/y", "--log-format", "json", "-v"]
    rest = [*path, *MINIMAL[path]]
    argv = [*options, *rest] if where == "before" else [*rest, *options]
    args = build_parser().parse_args(argv)
    assert args.data_dir == Path("/x/y")
    assert args.log_format == "json" and args.verbose == 1


def test_an_absent_global_option_does_not_override_a_given_one() -> None:
    args = build_parser().parse_args(["--data-dir", "a", "runs", "show"])
    assert args.data_dir == Path("a")  # the subparser did not reset it to a default
    args = build_parser().parse_args(["runs", "show"])
    assert not hasattr(args, "data_dir")


def _help_of(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*path, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=["clmmd", *(" ".join(p) for p in COMMANDS)])
def test_help_texts_render_cleanly(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help_of(path, capsys)
    assert "``" not in text  # docstring markup
    assert "{'" not in text and "option_strings" not in text  # a bare % in a help string
    assert "%(" not in text and "None" not in text


def test_evaluate_help_shows_the_percent_sign(capsys: pytest.CaptureFixture[str]) -> None:
    assert "± this % around the price" in " ".join(_help_of(("evaluate",), capsys).split())


def test_data_dir_after_the_subcommand_reaches_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: with CLMMD_DATA_DIR pointing elsewhere, each command given ``--data-dir X``
    after its name works on X."""
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    monkeypatch.setenv("CLMMD_DATA_DIR", str(tmp_path / "wrong"))
    data = tmp_path / "right"
    d = ["--data-dir", str(data)]
    assert main(["campaign", "--episodes", "3", "--seed", "2", *d]) == 0
    out = capsys.readouterr().out
    run_id = orjson.loads(out.splitlines()[-1])["run_id"]
    checks: list[tuple[list[str], str]] = [
        (["runs", *d], run_id),
        (["runs", "list", *d], run_id),
        (["runs", "show", "latest", *d], run_id),
        (["runs", "validate", *d], f"{run_id}: 3 episodes, 0 violation(s)"),
        (["report", *d], str(data / "runs" / run_id / "report" / "report.html")),
        (["status", *d], str(data / "dune_triggers.jsonl")),
        (["trigger", "episodes", "--count", "2", *d], str(data / "dune_triggers.jsonl")),
        (["trigger", "refresh", "--reason", "r", "--pool", POOL, *d], str(data)),
        (["export", "--window", "1h", "--out", str(tmp_path / "x.jsonl"), *d], "3 episodes"),
        (["clean", "--keep", "1", "--dry-run", *d], "would remove 0 run(s), kept 1 newest"),
        (["refresh", "--once", *d], "refreshed 0, failed 0"),  # the campaign warmed the cache
        (["registry", *d], "10 enabled"),
        (["history", "list", *d], ""),
        (["sweep", "--pools", POOL, "--widths", "5", "--seeds", "1", "--serial", *d], "±5%"),
    ]
    for argv, expected in checks:
        assert main(argv) == 0, argv
        assert expected in capsys.readouterr().out, argv
    assert not (tmp_path / "wrong").exists()
