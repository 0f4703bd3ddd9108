"""pytest's own terminal output in a parallel run, shaped for the person reading it.

**Progress lines.** Serially, pytest starts a new line, headed by the file's
name, whenever a test's file differs from the last one's. In a parallel run
modules interleave, so that is nearly a line per test: a CI log of 2,000
tests would hold nearly 2,000 lines. As pytest-xdist does, fleet turns the
file names off (``showfspath``, TerminalReporter's public switch), so the
progress characters run on in lines of the terminal's width, each ending
with pytest's own percentage or count (``console_output_style``); where pytest
shows none (``-s``, ``--setup-show``, ``classic``), fleet breaks the line at
the terminal's width. ``-v`` keeps pytest's line per test, which names its
worker (``plugin.pytest_report_teststatus``); ``-q`` and ``-qq`` show no
file names anyway and are unchanged.

**Lines between them.** A line fleet writes while tests run (a SLOW test)
never lands inside a line of progress characters: that line is ended first,
with its percentage, as pytest ends one at a file change.

**The interrupt banner.** pytest's banner after Ctrl-C names the place the
``KeyboardInterrupt`` was raised: in a parallel run that is fleet's own
loop, which tells nobody anything. fleet's banner names the tests that were
running instead, where they are defined, on which worker, for how long, and
what became of them; SIGTERM to a controller of worker processes reads
``Terminated (SIGTERM)``.
"""

from __future__ import annotations

from typing import Any

import pytest

from fleet.report.monitor import RunMonitor
from fleet.state import internals

# item.location: (path relative to the rootdir, 0-based line, name in its module)
Location = tuple[str, "int | None", str]


class ProgressLines:
    """Registered for a parallel run's tests, from the first one logged on."""

    def __init__(self, config: pytest.Config) -> None:
        self.reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
        reporter = self.reporter
        # serially, the first test's line (-v) or file name comes after an empty line
        self._blank_line_due = reporter is not None and (reporter.showlongtestinfo or reporter.showfspath)
        if reporter is not None and not reporter.showlongtestinfo:
            reporter.showfspath = False

    def _blank_line(self) -> None:
        if self._blank_line_due:
            self._blank_line_due = False
            self.reporter.line("")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self) -> None:
        if self.reporter is not None and self.reporter.showlongtestinfo:
            self._blank_line_due = False  # pytest writes it
        elif self.reporter is not None:
            self._blank_line()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self) -> None:
        """Where pytest ends no line at the edge, fleet does (pytest's own
        progress, when shown, ends it with the percentage)."""
        reporter = self.reporter
        if reporter is None or reporter.showlongtestinfo or internals.shows_progress(reporter):
            return
        if internals.current_line_width(reporter) >= internals.terminal_width(reporter) - 1:
            reporter.write("\n")

    def write_line(self, text: str, **markup: bool) -> None:
        """A line of fleet's own while tests run, between progress lines."""
        reporter = self.reporter
        if reporter is None:
            return
        self._blank_line()
        if reporter.showlongtestinfo:
            # -v: pytest ends a test's line when the next one starts; left open
            # the same way (pytest's own mark, -2), this line is ended then too
            reporter.ensure_newline()
            reporter.write(text, **markup)
            reporter.currentfspath = -2
            return
        if internals.current_line_width(reporter) > 0:
            internals.end_progress_line(reporter)
        reporter.write_line(text, **markup)


def interrupt_banner(monitor: RunMonitor, locations: dict[str, Location]) -> tuple[str, list[str]]:
    """The banner's title and one line per test that was running when the run
    was interrupted: ``path:line: name was running on t0 (1.8s); it then
    passed``."""
    interruption = monitor.interruption
    assert interruption is not None
    if not interruption.running:
        return interruption.cause, [f"no test was running ({monitor.done} of {monitor.total} had finished)"]
    lines = []
    for worker, (nodeid, since) in sorted(interruption.running.items(), key=lambda kv: kv[1][1]):
        path, line, name = locations.get(nodeid, (nodeid, None, nodeid))
        where = path if line is None else f"{path}:{line + 1}"
        record = monitor.records.get(nodeid)
        if nodeid == interruption.raised_in:
            then = "it raised KeyboardInterrupt"
        elif record is not None and record.outcome:
            then = f"it then finished: {record.outcome}"
        else:
            then = "it did not finish"
        lines.append(f"{where}: {name} was running on {worker} ({interruption.at - since:.1f}s); {then}")
    return interruption.cause, lines
