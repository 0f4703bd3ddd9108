"""Progress while a parallel run is going: a live view on a terminal, SLOW lines off one.

On a terminal, a rich ``Live`` region under pytest's own output shows
done/total, the outcomes so far, an ETA, and what each worker is running
now and for how long, flagging tests past ``--slow-after`` as SLOW. pytest's
output keeps its meaning (``-q``/``-v``): its terminal writer is pointed at
:class:`_Lines`, which prints each finished line above the region. The
region is transient: once the run ends only pytest's usual output is left.

Off a terminal (CI logs), and with ``--no-live`` or ``-s``, nothing changes
but one line per test that passes ``--slow-after``, written between lines of
progress characters (:class:`~fleet.report.terminal.ProgressLines`).
"""

from __future__ import annotations

import io
import shutil
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # rich is imported only when the live view is drawn (~80 ms)
    from rich.console import Console, Group
    from rich.live import Live

from fleet.state import internals
from fleet.report.monitor import RunMonitor
from fleet.report.terminal import ProgressLines

OUTCOME_STYLES = {
    "passed": "green", "failed": "red", "error": "red", "skipped": "yellow",
    "xfailed": "yellow", "xpassed": "yellow",
}


class Progress:
    def __init__(self, config: pytest.Config, monitor: RunMonitor, lines: ProgressLines) -> None:
        self.config = config
        self.monitor = monitor
        self.lines = lines
        self.slow_after: float = config.getoption("fleet_slow_after")
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self._flagged: set[tuple[str, str, float]] = set()
        self._live: Live | None = None
        self._saved_file: Any = None
        monitor.on_tick(self._flag_slow_tests)

    def wants_live(self) -> bool:
        if self.reporter is None or self.config.getoption("fleet_no_live"):
            return False
        if self.config.getoption("capture") == "no":
            return False  # tests write to the terminal themselves
        file = internals.terminal_file(self.reporter)
        return bool(getattr(file, "isatty", lambda: False)())

    def start(self) -> None:
        if not self.wants_live():
            return
        from rich.console import Console
        from rich.live import Live

        terminal = internals.terminal_file(self.reporter)
        console = Console(file=terminal, force_terminal=True)
        self._live = Live(
            get_renderable=self.render, console=console, transient=True,
            redirect_stdout=False, redirect_stderr=False, refresh_per_second=4,
        )
        self._lines = _Lines(console, terminal)
        self._saved_file = internals.set_terminal_file(self.reporter, self._lines)
        self._live.start()

    def stop(self) -> None:
        if self._live is None:
            return
        try:
            self._live.stop()
        finally:
            internals.set_terminal_file(self.reporter, self._saved_file)
            self._live = None
            self._saved_file.write(self._lines.unfinished())  # the rest of the line, e.g. dots
            self._saved_file.flush()

    # -- SLOW tests ------------------------------------------------------------

    def _flag_slow_tests(self) -> None:
        now = time.time()
        for worker, (nodeid, since) in self.monitor.running().items():
            key = (worker, nodeid, since)
            if now - since >= self.slow_after and key not in self._flagged:
                self._flagged.add(key)
                self.lines.write_line(
                    f"SLOW [{worker}] {nodeid} still running after {now - since:.0f}s "
                    f"(--slow-after {self.slow_after:g})",
                    yellow=True, bold=True,
                )

    # -- the live view -----------------------------------------------------------

    def render(self) -> Group:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        monitor = self.monitor
        counts = dict(monitor.counts)
        done, total = monitor.done, monitor.total
        elapsed = time.time() - monitor.begin
        eta = "--:--" if not done else _clock(elapsed / done * max(0, total - done))
        head = Table.grid(padding=(0, 1))
        head.add_row(
            Text("fleet", style="bold"),
            ProgressBar(total=max(total, 1), completed=done, width=30),
            Text(f"{done}/{total}"),
            Text.assemble(*_outcome_words(counts)),
            Text(f"elapsed {_clock(elapsed)}  ETA {eta}", style="dim"),
        )
        running = monitor.running()
        now = time.time()
        rows = Table.grid(padding=(0, 2))
        height = shutil.get_terminal_size((80, 24)).lines
        room = max(1, height - 4)
        workers = monitor.workers
        shown = workers[:room] if len(workers) <= room else [w for w in workers if w in running][: room - 1]
        for worker in shown:
            entry = running.get(worker)
            host = monitor.hosts.get(worker)
            label = worker if host is None else f"{worker} on {host}"
            if entry is None:
                rows.add_row(Text(label, style="dim"), Text("idle", style="dim"), Text(""), Text(""))
                continue
            nodeid, since = entry
            seconds = now - since
            slow = seconds >= self.slow_after
            rows.add_row(
                Text(label, style="cyan"),
                Text(nodeid, overflow="ellipsis", no_wrap=True),
                Text(f"{seconds:6.1f}s"),
                Text("SLOW", style="bold yellow") if slow else Text(""),
            )
        hidden = len(workers) - len(shown)
        if hidden > 0:
            rows.add_row(Text(""), Text(f"... {hidden} more workers", style="dim"), Text(""), Text(""))
        return Group(head, rows)


class _Lines(io.TextIOBase):
    """pytest's terminal output, printed above the live region a whole line at a
    time (a line of progress dots appears once it is complete)."""

    def __init__(self, console: Console, file: Any) -> None:
        self._console = console
        self._file = file
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            from rich.text import Text

            lines, _, self._buffer = self._buffer.rpartition("\n")
            self._console.print(Text.from_ansi(lines), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass  # a partial line waits for its end

    def unfinished(self) -> str:
        rest, self._buffer = self._buffer, ""
        return rest

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()


def _outcome_words(counts: dict[str, int]) -> list[tuple[str, str]]:
    words = [(f"{counts[k]} {k}  ", OUTCOME_STYLES[k]) for k in OUTCOME_STYLES if counts.get(k)]
    return words or [("", "")]


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
