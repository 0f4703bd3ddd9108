"""The reports of one parallel run beyond pytest's own, brought together.

The run's record (:class:`~fleet.report.monitor.RunMonitor`), registered so it
reads every report the executor logs; pytest's progress lines shaped for a
parallel run and the live view while tests run; the banner of an
interrupted run; the ``--timeline`` file; and the ``fleet`` section at the
end of the terminal summary. Registered as a plugin by the run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from fleet import adapters
from fleet.report import timeline, utilisation
from fleet.report.live import Progress
from fleet.report.monitor import RunMonitor
from fleet.report.terminal import Location, ProgressLines, interrupt_banner
from fleet.state import internals


class RunReport:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.monitor: RunMonitor | None = None
        self.notes: list[str] = []
        self.per_process: dict[str, str] = {}
        self.lines: ProgressLines | None = None
        self._locations: dict[str, Location] = {}

    def watch(self, items: Sequence[pytest.Item]) -> RunMonitor:
        """The run's record, from now on reading every report logged."""
        monitor = self.monitor = RunMonitor(len(items))
        self.config.pluginmanager.register(monitor, "fleet-monitor")
        self.lines = ProgressLines(self.config)
        self.config.pluginmanager.register(self.lines, "fleet-progress-lines")
        self._locations = {item.nodeid: item.location for item in items}
        adapters.notify(self.config, "watch", monitor=monitor, items=items)
        return monitor

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """The live view (on a terminal) or SLOW lines, while tests run."""
        assert self.monitor is not None and self.lines is not None
        progress = Progress(self.config, self.monitor, self.lines)
        progress.start()
        try:
            yield
        finally:
            progress.stop()
            self.monitor.finish()

    def finished(self, notes: list[str], per_process: dict[str, str]) -> None:
        """What the executor has to say, and the timeline file."""
        self.notes, self.per_process = notes, per_process
        path = self._timeline()
        if path is not None and self.monitor is not None:
            timeline.write(path, self.monitor)  # checked at configure

    @pytest.hookimpl(trylast=True)
    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C or SIGTERM stopped the run: the banner names the tests that were running."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.monitor is None or self.monitor.interruption is None:
            return  # a KeyboardInterrupt from a test on a thread points at the test already
        title, lines = interrupt_banner(self.monitor, self._locations)
        internals.replace_interrupt_banner(reporter, title, lines, hint=title == "KeyboardInterrupt")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.monitor is None:
            return
        told = [line for lines in adapters.gather(self.config, "notes").values() for line in lines]
        lines = self.notes + told
        if self.config.get_verbosity() > -2:  # -qq: only what went wrong or differs
            lines += utilisation.summary(self.monitor, self.per_process, self._timeline())
        if lines:
            terminalreporter.section("fleet", sep="-")
            for line in lines:
                terminalreporter.line(line)

    def _timeline(self) -> Path | None:
        path = self.config.getoption("fleet_timeline")
        return (self.config.invocation_params.dir / path) if path else None
