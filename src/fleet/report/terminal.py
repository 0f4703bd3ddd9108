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
"""

from __future__ import annotations

from typing import Any

import pytest

from fleet.state import internals


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

