"""Where a command's output and log lines go: a person at a terminal, or a pipe and journald.

Three routes, chosen per command:

* **daemon** (``clmmd run``): JSON lines on stdout (journald) and in ``<data>/logs/clmmd.log``,
  whatever stdout is.
* **campaign**: in ``json`` mode (stdout not a terminal, or ``--log-format json``) JSON lines on
  stdout, progress and the closing summary included, so every stdout line parses. In ``human``
  mode (a terminal) stdout is the progress bar and a text summary only; the JSON lines go to
  ``<data>/logs/clmmd.log``, and to stderr only at warning and above (every line with ``-v``).
* **text** (every other command): stdout is the command's own text; log lines never go there,
  they go to stderr as JSON, at warning and above (every line with ``-v`` or
  ``--log-format json``).

Log lines written to a terminal's stderr first erase the current line, so they never glue onto a
progress bar drawn on the same terminal.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, cast

import orjson

from clmmd.service.config import Settings
from clmmd.service.logging import SINKS
from clmmd.service.wiring import start_logging

LOG_FORMATS = ("auto", "json", "human")
OutputMode = Literal["human", "json"]

_ERASE_LINE = b"\r\x1b[K"
_LEVEL_ORDER = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_DEFAULT_DATA_DIR = Path(str(Settings.model_fields["data_dir"].default))


def resolve_mode(log_format: str, stdout_is_terminal: bool) -> OutputMode:
    """``auto`` is human on a terminal and JSON everywhere else (systemd, CI, pipes)."""
    if log_format == "json":
        return "json"
    if log_format == "human":
        return "human"
    return "human" if stdout_is_terminal else "json"


class LevelGate:
    """A log stream passing only lines at or above ``min_level`` to ``target``.

    It parses each rendered line for its ``level`` (the renderer writes whole JSON objects);
    with ``erase_line`` it clears the terminal's current line first (a progress bar).
    """

    def __init__(self, target: IO[bytes], min_level: str, *, erase_line: bool = False) -> None:
        self.target = target
        self.min_rank = _LEVEL_ORDER[min_level]
        self.erase_line = erase_line

    def write(self, line: bytes) -> int:
        try:
            level = orjson.loads(line).get("level")
        except (orjson.JSONDecodeError, AttributeError):
            level = None
        if _LEVEL_ORDER.get(level if isinstance(level, str) else "", 50) < self.min_rank:
            return len(line)
        if self.erase_line:
            self.target.write(_ERASE_LINE)
        return self.target.write(line)

    def flush(self) -> None:
        self.target.flush()


def _is_terminal(stream: IO[str] | IO[bytes]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@dataclass(frozen=True)
class Console:
    """How this process talks to whoever runs it (see the module docstring)."""

    mode: OutputMode
    verbose: int = 0
    log_format: str = "auto"
    program: str = "clmmd"
    stdout_is_terminal: bool = False

    @classmethod
    def for_process(cls, log_format: str, verbose: int) -> Console:
        """The console of this process: the mode follows whether stdout is a terminal."""
        terminal = _is_terminal(sys.stdout)
        return cls(
            mode=resolve_mode(log_format, terminal),
            verbose=verbose,
            log_format=log_format,
            program=program_name(),
            stdout_is_terminal=terminal,
        )

    @property
    def human(self) -> bool:
        return self.mode == "human"

    @property
    def draws_progress(self) -> bool:
        """A redrawn progress bar only where a terminal shows it (not into a file or pipe)."""
        return self.human and self.stdout_is_terminal

    # -- log routes -----------------------------------------------------------------------

    def daemon_logging(self, settings: Settings) -> Path:
        """JSON lines on stdout and in the daemon's rotated log file; returns that file."""
        start_logging(settings, level=self._level(settings))
        path = log_file(settings)
        SINKS.add_file(path)
        return path

    def campaign_logging(self, settings: Settings) -> Path | None:
        """JSON on stdout (json mode), or to the log file and stderr's gate (human mode).

        Returns the log file in human mode (None in json mode, where stdout is the log).
        """
        if not self.human:
            start_logging(settings, level=self._level(settings))
            return None
        start_logging(settings, stream=self._stderr_gate(settings), level=self._level(settings))
        path = log_file(settings)
        try:
            SINKS.add_file(path)
        except OSError:
            return None  # the command reports the unusable data dir itself
        return path

    def text_logging(self, settings: Settings) -> None:
        """Log lines to stderr only, so a command's text on stdout stays clean."""
        start_logging(settings, stream=self._stderr_gate(settings), level=self._level(settings))

    def _level(self, settings: Settings) -> str:
        return "debug" if self.verbose >= 2 else settings.log_level

    def _stderr_gate(self, settings: Settings) -> IO[bytes]:
        shows_all = self.verbose > 0 or self.log_format == "json"
        minimum = self._level(settings) if shows_all else "warning"
        # The gate stands in for a byte stream: the sinks only ever call write and flush.
        return cast(
            IO[bytes],
            LevelGate(sys.stderr.buffer, minimum, erase_line=_is_terminal(sys.stderr)),
        )

    # -- hints ----------------------------------------------------------------------------

    def command(self, settings: Settings, *words: str) -> str:
        """A command line the user can paste: the program, the words, and ``--data-dir`` when
        the data dir is not the default one (an inline ``CLMMD_DATA_DIR=`` would be lost)."""
        parts = [self.program, *words]
        if settings.data_dir != _DEFAULT_DATA_DIR:
            parts += ["--data-dir", str(settings.data_dir)]
        return " ".join(shlex.quote(p) if p != self.program else p for p in parts)


def log_file(settings: Settings) -> Path:
    """The rotated JSON log of the data dir (the daemon's, and a terminal campaign's)."""
    return settings.data_dir / "logs" / "clmmd.log"


def program_name() -> str:
    """How the user can type this command again: ``.venv/bin/clmmd`` after ``make run``."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if invoked is None or invoked.name != "clmmd" or shutil.which("clmmd") == str(invoked):
        return "clmmd"
    try:
        return str(invoked.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(invoked)
