"""What executors tell the rest of fleet while they run: the one interface from
execute/ to report/.

An executor does not import the reports; it is given something with these
methods (the run's :class:`fleet.report.monitor.RunMonitor`) and calls them as
things happen. Everything else the reports learn from the test reports the
executor logs through pytest's hooks.
"""

from __future__ import annotations

from typing import Protocol

import pytest


class RunEvents(Protocol):
    def use_workers(self, names: list[str]) -> None:
        """These workers exist (in the order they should be shown)."""

    def placed(self, workers: list[str], host: str) -> None:
        """These workers run on another machine, ``host`` (``node 10.0.0.2``)."""

    def started(self, worker: str, nodeid: str, at: float) -> None:
        """``worker`` started the test ``nodeid`` at ``at`` (``time.time()``)."""

    def since(self, worker: str, nodeid: str) -> float | None:
        """When ``worker`` started ``nodeid``, if it is still running it."""

    def marker(self, worker: str, kind: str, text: str) -> None:
        """Something happened to ``worker``: ``crash``, ``timeout``, ``restart``."""

    def lost_attempt(self, item: pytest.Item, worker: str, text: str) -> None:
        """A run of ``item`` was lost in a crash; it runs again."""

    def interrupted(self, cause: str, raised_in: str | None = None) -> None:
        """The run is being stopped (``KeyboardInterrupt``, ``Terminated
        (SIGTERM)``; ``raised_in``: by that test, in a worker process): the tests
        running now are the ones the banner names."""

    def tick(self) -> None:
        """Called at least once a second by the executor's main loop."""

    def cpu_used(self, cpu: float, wall: float) -> None:
        """Tests ran on threads of this process, which used ``cpu`` seconds of
        CPU time (every thread's) in ``wall`` seconds."""
