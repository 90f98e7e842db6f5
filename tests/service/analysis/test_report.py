"""clmmd report: the page, the PNGs, a real run, a run still being written, headless Chromium."""

from __future__ import annotations

import html.parser
import io
import math
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clmmd.artifacts.layout import RunLayout, episode_id, list_runs
from clmmd.artifacts.models import (
    EpisodeFailure,
    EpisodeMetadata,
    EpisodeResult,
    IntelHygiene,
    MetadataExtra,
    Proposal,
    RangeAction,
    Reward,
    RewardComponents,
    RunInfo,
    Simulation,
)
from clmmd.artifacts.summary import summarize_folders
from clmmd.artifacts.validate import validate_run
from clmmd.artifacts.writer import TEMP_MARKER, create_episode_dir, replace_json, write_json_new
from clmmd.service.analysis.report import (
    FIGURE_ACCENT,
    PLOTS,
    episode_row,
    load_run,
    render_html,
    write_report,
)
from clmmd.service.cli.main import main

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN_ID = "run_20260301_120000_abcd"
REGIMES = (
    "gas=low|vol=low|flow=clean",
    "gas=low|vol=mid|flow=clean",
    "gas=high|vol=high|flow=toxic",
)
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def _episode(layout: RunLayout, index: int, outcome: str) -> None:
    eid = episode_id(index)
    regime = REGIMES[index % len(REGIMES)]
    width = (200, 500, 1000, 2000)[index % 4]
    price = 3000.0 + 10 * index
    proposal = Proposal(
        run_id=layout.run_id,
        episode_id=eid,
        proposed=True,
        tick_lower=196000 - width // 2,
        tick_upper=196000 + width // 2,
        price_at_proposal_usd=price,
        price_lower_usd=price * (1 - width / 40_000),
        price_upper_usd=price * (1 + width / 40_000),
        action=RangeAction(width_ticks=width, fee_pips=500),
        regime_key=regime,
        size_usd=10_000.0,
        seed=index,
    )
    folder = create_episode_dir(layout.episodes_dir, eid, proposal, durable=False)
    if outcome == "running":
        return
    fresh = max(0, 10 - index // 3)
    hygiene = IntelHygiene(
        total_queries=10,
        fresh=fresh,
        stale=min(2, 10 - fresh),
        missing_or_too_old=10 - fresh - min(2, 10 - fresh),
        fresh_pct=fresh * 10.0,
    )
    if outcome == "failed":
        write_json_new(
            folder / "failure.json",
            EpisodeFailure(
                stage="execute",
                error_type="GatewayUnreachable",
                error_message="Gateway no answer <at> 127.0.0.1:15888",
                hint="in real mode check Gateway",
                timestamp="2026-03-01T12:00:00Z",
            ),
            durable=False,
        )
    else:
        skipped = outcome == "skipped"
        pnl, fees, il = 40.0 * math.sin(index) - 5.0, 10.0 + index, 3.0 * (index % 5)
        write_json_new(
            folder / "reward.json",
            Reward(
                total=0.0,
                components=RewardComponents(pnl=0.0, fees=0.0, gas_penalty=0.0, range_penalty=0.0),
            ),
            durable=False,
        )
        write_json_new(
            folder / "result.json",
            EpisodeResult(
                status="skipped" if skipped else "success",
                reason="gate I_UNDERSTAND_LIVE_RISK" if skipped else None,
                simulation=Simulation(source="mock"),
                pnl_usd=0.0 if skipped else pnl,
                fees_usd=0.0 if skipped else fees,
                gas_cost_usd=0.0 if skipped else 6.0,
                il_usd=0.0 if skipped else il,
                hodl_return_usd=0.0 if skipped else pnl + il - fees + 6.0,
                time_in_range_pct=0.0 if skipped else (index * 37) % 101,
                risk_scalar_applied=0.8,
                size_usd_applied=0.0 if skipped else 8000.0,
                timings_ms={},
            ),
            durable=False,
        )
    write_json_new(
        folder / "metadata.json",
        EpisodeMetadata(
            run_id=layout.run_id,
            episode_id=eid,
            agent_version="test",
            config_hash="cafe",
            exec_mode="mock",
            timestamp="2026-03-01T12:00:00Z",
            regime_key=regime,
            seed=index,
            learning_update_applied=False,
            learning_update_reason="test",
            extra=MetadataExtra(intel_hygiene=hygiene),
        ),
        durable=False,
    )


def make_run(data_dir: Path, outcomes: list[str], run_id: str = RUN_ID) -> RunLayout:
    """A run folder written with the artifact models, one episode per outcome."""
    layout = RunLayout(data_dir, run_id)
    layout.episodes_dir.mkdir(parents=True)
    info = RunInfo(
        run_id=run_id,
        started_at="2026-03-01T12:00:00Z",
        kind="campaign",
        config_hash="cafe",
        exec_mode="mock",
        seed=42,
        agent_version="test",
        pid=1,
        config={},
    )
    write_json_new(layout.run_dir / "run.json", info, durable=False)
    for index, outcome in enumerate(outcomes, start=1):
        _episode(layout, index, outcome)
    replace_json(layout.summary_path, summarize_folders(layout, NOW), durable=False)
    return layout


MIXED = ["success"] * 9 + ["failed", "success", "skipped"] + ["success"] * 12


class _Refs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data"):
                self.refs.append((tag, name, value or ""))


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_report_files_are_self_contained_and_show_the_run(tmp_path: Path) -> None:
    layout = make_run(tmp_path, MIXED)
    files = write_report(layout, NOW)
    assert files.html == layout.run_dir / "report" / "report.html"
    assert [p.name for p in files.pngs] == [f"{name}.png" for name, _, _ in PLOTS]
    page = files.html.read_text()
    parser = _Refs()
    parser.feed(page)
    # Every reference is an embedded PNG, one per plot; nothing would need a network.
    assert [tag for tag, _, _ in parser.refs] == ["img"] * len(PLOTS)
    assert all(v.startswith("data:image/png;base64,") for _, _, v in parser.refs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # The failure's message is escaped, its hint shown; the skip names its gate.
    assert "Gateway no answer &lt;at&gt; 127.0.0.1:15888" in page
    assert "in real mode check Gateway" in page
    assert "gate I_UNDERSTAND_LIVE_RISK" in page
    assert "Failed and skipped episodes (2)" in page
    assert page.count('<tr><td class="l">ep_') == len(MIXED) + 2
    assert "still being written" not in page
    # The decomposition adds up, and each range shows in USD and per cent beside its ticks.
    data = load_run(layout, NOW)
    s = data.summary
    assert s.total_hodl_return_usd is not None
    assert s.total_pnl_usd == pytest.approx(
        s.total_hodl_return_usd - s.total_il_usd + s.total_fees_usd - s.total_gas_usd
    )
    assert f"PnL <b>{s.total_pnl_usd:,.2f}</b> USD = HODL return" in page
    assert "<td>195750–196250</td><td>500</td><td>2,972.38–3,047.62</td><td>±1.2 %</td>" in page
    # The run folder is still a valid run: the report lives beside the artifacts.
    assert validate_run(layout) == []


def test_pngs_are_real_plots(tmp_path: Path) -> None:
    files = write_report(make_run(tmp_path, MIXED), NOW)
    for path in files.pngs:
        pixels = _png(path.read_bytes())
        height, width, _ = pixels.shape
        assert (width, height) == (1100, 363), path.name
        colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
        # Series are coloured; a blank or text-only frame would have (almost) no such pixels.
        assert colourful.sum() > 1500, path.name


def test_rows_read_back_every_outcome(tmp_path: Path) -> None:
    layout = make_run(tmp_path, ["success", "failed", "skipped", "running"])
    rows = [episode_row(d, n) for n, d in enumerate(layout.episode_dirs(), start=1)]
    assert [r.outcome for r in rows] == ["success", "failed", "skipped", "running"]
    assert rows[0].width_ticks == 500 and rows[0].regime_key == REGIMES[1]
    assert rows[1].stage == "execute" and rows[1].pnl_usd is None
    assert rows[3].fresh is None and rows[3].regime_key == REGIMES[4 % len(REGIMES)]


def test_run_still_being_written_is_reported_as_such(tmp_path: Path) -> None:
    layout = make_run(tmp_path, ["success", "success", "running"])
    layout.active_marker.write_text(str(os.getppid()))  # a live process that is not us
    data = load_run(layout, NOW)
    assert data.writer_pid == os.getppid()
    assert data.summary.episodes == 2  # the running episode has no outcome yet
    page = render_html(data, {name: b"" for name, _, _ in PLOTS}, NOW)
    assert "still being written" in page and "running" in page


def test_empty_run_still_renders(tmp_path: Path) -> None:
    files = write_report(make_run(tmp_path, []), NOW)
    assert "Episodes (0)" in files.html.read_text()
    assert all(p.stat().st_size > 1000 for p in files.pngs)


def test_cli_report_on_a_real_campaign_run(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    assert main(["campaign", "--episodes", "6", "--seed", "5"]) == 0
    (run,) = list_runs(data_dir)
    capsys.readouterr()
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert f"report: {run.run_dir / 'report' / 'report.html'}" in out
    assert out.count("plot:") == len(PLOTS)
    assert main(["report", run.run_id, "--out", str(tmp_path / "elsewhere")]) == 0
    page = (tmp_path / "elsewhere" / "report.html").read_text()
    assert run.run_id in page and "Episodes (6)" in page
    assert main(["runs", "validate", run.run_id]) == 0


def test_cli_report_without_runs_exits_2_with_a_hint(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert "no runs under" in err and "clmmd campaign" in err
    assert main(["report", "run_nope"]) == 2
    assert "run_nope" in capsys.readouterr().err


def _accent_bands(pixels: np.ndarray) -> list[tuple[int, int]]:
    """Row spans of the accent bar drawn left of each plot, found in the best column."""
    accent = np.all(np.abs(pixels - np.array(FIGURE_ACCENT)) <= 3, axis=2)
    column = int(accent.sum(axis=0).argmax())
    bands, start = [], None
    for y, on in enumerate([*accent[:, column].tolist(), False]):
        if on and start is None:
            start = y
        elif not on and start is not None:
            bands.append((start, y))
            start = None
    return [(top, bottom) for top, bottom in bands if bottom - top >= 100]


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    files = write_report(make_run(tmp_path / "data", MIXED), NOW)
    shot = tmp_path / "screenshot.png"
    completed = _chromium(
        tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,4000", files.html.as_uri()
    )
    assert shot.exists(), completed.stderr.decode(errors="replace")[-2000:]
    pixels = _png(shot.read_bytes())
    assert pixels.shape[:2] == (4000, 1280)
    # Each plot sits right of an accent bar; one bar per plot, each as tall as a plot, and
    # right of each bar a picture: coloured series (text and tables are grey), not blank.
    bands = _accent_bands(pixels)
    assert len(bands) == len(PLOTS), bands
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    for top, bottom in bands:
        assert bottom - top >= 363
        area = pixels[top:bottom, 100:1250]
        assert area.std() > 20
        assert colourful[top:bottom, 100:1250].sum() > 1500
    # The waterfall is the first plot; the page Chromium laid out says how PnL decomposes
    # and shows each range in USD and per cent beside its ticks.
    assert PLOTS[0][0] == "pnl_decomposition"
    dom = _chromium(tmp_path / "profile", "--dump-dom", files.html.as_uri()).stdout.decode()
    assert "= HODL return" in dom and "− IL" in dom and "− gas" in dom
    assert "<td>195750–196250</td><td>500</td><td>2,972.38–3,047.62</td><td>±1.2 %</td>" in dom
    # Copy kept beside the report for a person to look at.
    shutil.copy(shot, files.html.with_name("screenshot.png"))


# --- the run commands on an empty data dir and on a run a live process is writing -----------


def test_run_commands_on_an_empty_data_dir(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list"]) == 0
    assert "no runs under" in capsys.readouterr().out
    for argv in (["runs", "show"], ["runs", "validate"], ["report"]):
        assert main(argv) == 2, argv
        assert "no runs under" in capsys.readouterr().err
    assert main(["runs", "validate", "--all"]) == 0
    assert main(["clean", "--keep", "1"]) == 0
    assert not (data_dir / "runs").exists()


def _wait_for_episodes(data_dir: Path, proc: subprocess.Popen[bytes], count: int) -> RunLayout:
    deadline = 60.0
    waited = 0.0
    while waited < deadline:
        runs = list_runs(data_dir)
        if runs and len(runs[0].episode_dirs()) >= count:
            return runs[0]
        assert proc.poll() is None, "the campaign ended before it could be observed"
        subprocess.run(["sleep", "0.05"], check=True)  # a real process: real time
        waited += 0.05
    raise AssertionError("no episodes appeared within 60 s")


@pytest.mark.skipif(not (Path(sys.executable).parent / "clmmd").exists(), reason="no clmmd script")
def test_run_commands_on_a_run_still_being_written(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**os.environ, "CLMMD_DATA_DIR": str(data_dir), "CLMMD_DURABLE_WRITES": "false"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "clmmd"), "campaign", "--episodes", "100000"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run = _wait_for_episodes(data_dir, proc, 3)
        # Freeze the writer mid-run (it stays alive, so the run is still "being written") and
        # the folder holds still while the commands look at it.
        os.kill(proc.pid, signal.SIGSTOP)
        assert run.active_marker.read_text().strip() == str(proc.pid)
        in_flight = [
            entry.name
            for entry in run.episodes_dir.iterdir()
            if TEMP_MARKER in entry.name or not (entry / "metadata.json").exists()
        ]
        assert main(["runs", "list"]) == 0
        assert run.run_id in capsys.readouterr().out
        assert main(["runs", "show", "latest"]) == 0
        assert "ep_000001" in capsys.readouterr().out
        main(["runs", "validate", run.run_id])
        out = capsys.readouterr().out
        # Finished episodes are valid; only the episodes in flight are incomplete, and the
        # summary (rewritten as episodes end) is not held against a run being written.
        violations = [line for line in out.splitlines() if line.startswith("VIOLATION")]
        assert all(any(f"/{name}" in v for name in in_flight) for v in violations), violations
        assert main(["report", "--out", str(tmp_path / "live")]) == 0
        page = (tmp_path / "live" / "report.html").read_text()
        assert f"still being written (process {proc.pid})" in page
        assert main(["clean", "--keep", "0"]) == 0
        assert "still being written by a live process" in capsys.readouterr().out
        assert run.run_dir.is_dir()
    finally:
        proc.kill()
        proc.wait(30)
    # Its writer is gone now: the run is no longer protected.
    assert main(["clean", "--keep", "0"]) == 0
    assert not run.run_dir.exists()
