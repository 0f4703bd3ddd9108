"""Failures that may be another test's doing, in one process running threads.

A test caught changing process-wide state (:mod:`fleet.state.watch`) may
make a test running beside it fail. So a failed test is not reported at once:
it waits until every test that was running when it ended has ended too (one
of them may yet be caught), and then

* if a caught test ran beside it at any moment, it runs again alone at the
  end of the run, and that result is the one reported (``--strict-threads``:
  the parallel result is reported, with a note); so does a test that itself
  replaced ``sys.stdout`` or ``sys.stderr`` while any test ran beside it, since
  whatever that test printed went into the replaced stream (click's
  ``CliRunner`` checking what a command printed);
* otherwise its failure is reported as it was.

Time here is a counter shared by the process's tests, ticking at every start
and end, so "beside" means the two tests' spans overlap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fleet.state.watch import StateWatch, replaced


@dataclass(frozen=True)
class Settled:
    """What became of a failed test: the caught tests that ran beside it (and
    what each did), if any; then it runs again alone."""

    index: int
    beside: tuple[tuple[int, str], ...] = ()


NAMED_BESIDE = 3  # tests named in a note; the rest are counted
STREAMS_REPLACED = {replaced("stdout"), replaced("stderr")}  # what a test beside it wrote goes there


def describe_beside(items: list[Any], beside: Any) -> str:
    """``test_a (which set ...) and test_c (which replaced sys.stdout)``;
    past three, ``..., test_c (which ...) and 12 more``."""
    beside = list(beside)
    parts = [f"{items[index].nodeid} (which {why})" for index, why in beside[:NAMED_BESIDE]]
    if len(beside) > NAMED_BESIDE:
        parts.append(f"{len(beside) - NAMED_BESIDE} more")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class Interference:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tick = 0
        self._running: dict[int, int] = {}  # index -> start tick
        # caught or suspected test -> [start, end or None]
        self._spans: dict[int, list[int | None]] = {}
        self.caught: dict[int, str] = {}  # seen doing it
        self._suspected: dict[int, str] = {}  # one of several that may have done it
        self._waiting: dict[int, set[int]] = {}  # failed index -> tests it waits for
        self._failed_spans: dict[int, tuple[int, int]] = {}
        # A test that replaced sys.stdout/stderr receives what every thread
        # writes meanwhile: whoever ran beside it may be why it failed.
        self._replaced_streams: set[int] = set()
        self._company: dict[int, int] = {}  # running test -> a test that ran beside it
        self._alone_so_far: set[int] = set()  # running tests nothing has run beside yet
        self._failed_company: dict[int, int] = {}

    def started(self, index: int) -> None:
        with self._lock:
            if self._running:
                self._company[index] = next(iter(self._running))
                for other in self._alone_so_far:
                    self._company[other] = index
                self._alone_so_far.clear()
            else:
                self._alone_so_far.add(index)
            self._running[index] = self._tick
            self._tick += 1

    def finished(self, index: int, failed: bool) -> list[Settled]:
        """The test ended; the failed tests (it among them) now settled."""
        with self._lock:
            start = self._running.pop(index, self._tick)
            company = self._company.pop(index, None)
            self._alone_so_far.discard(index)
            end = self._tick
            self._tick += 1
            span = self._spans.get(index)
            if span is not None and span[1] is None:
                span[1] = end
            ready = []
            for other, waiting in list(self._waiting.items()):
                waiting.discard(index)
                if not waiting:
                    del self._waiting[other]
                    ready.append(other)
            if failed:
                self._failed_spans[index] = (start, end)
                if company is not None:
                    self._failed_company[index] = company
                if self._running:
                    self._waiting[index] = set(self._running)
                else:
                    ready.append(index)
            return [self._settle(other) for other in ready]

    def _settle(self, index: int) -> Settled:
        start, end = self._failed_spans.pop(index)
        beside = []
        for culprit, (culprit_start, culprit_end) in sorted(self._spans.items()):
            if culprit == index:
                continue
            assert culprit_start is not None
            if culprit_start < end and (culprit_end is None or culprit_end > start):
                beside.append((culprit, self.caught.get(culprit) or self._suspected[culprit]))
        company = self._failed_company.pop(index, None)
        if index in self._replaced_streams and company is not None and not beside:
            beside.append((company, "ran beside it while it had the standard streams replaced"))
        return Settled(index, tuple(beside))

    def caught_so_far(self) -> dict[int, str]:
        """A copy of ``caught``: other threads add to it while tests run."""
        with self._lock:
            return dict(self.caught)

    def catch(self, index: int, reason: str) -> None:
        """The test changed process-wide state."""
        with self._lock:
            self._mark(index, reason, self.caught)
            if reason in STREAMS_REPLACED:
                self._replaced_streams.add(index)

    def _mark(self, index: int, reason: str, into: dict[int, str]) -> None:
        if index in into:
            return
        into[index] = reason
        if index not in self._spans:
            start = self._running.get(index)
            self._spans[index] = [start if start is not None else self._tick - 1, None if start is not None else self._tick]

    def suspect(self, reasons: list[str], observer: int | None, include_observer: bool) -> None:
        """A change seen at a test's start or end, done by one of the tests
        running now: all of them count as beside-test culprits, and the only
        one, if there is only one, as caught."""
        reason = "; ".join(reasons)
        with self._lock:
            suspects = [i for i in self._running if i != observer or include_observer]
            for index in suspects:
                self._mark(index, reason, self.caught if len(suspects) == 1 else self._suspected)

    def unsettled(self) -> list[int]:
        """Failed tests still waiting (the run was stopped): report them as they are."""
        with self._lock:
            left = list(self._waiting) + [i for i in self._failed_spans if i not in self._waiting]
            self._waiting.clear()
            self._failed_spans.clear()
            self._failed_company.clear()
        return sorted(set(left))


class SideBySide:
    """One process's tests running beside each other: the watch and the tracker."""

    def __init__(self, items: list[Any]) -> None:
        self.tracker = Interference()
        self._items = items
        self._index = {id(item): index for index, item in enumerate(items)}
        self.watch = StateWatch(self._caught)
        self._look_lock = threading.Lock()

    def _caught(self, item: Any, reason: str) -> None:
        index = self._index.get(id(item))
        if index is not None:
            self.tracker.catch(index, reason)

    def install(self) -> None:
        self.watch.install()

    def uninstall(self) -> None:
        self.watch.uninstall()

    def _look(self) -> list[str]:
        with self._look_lock:
            return self.watch.look()

    def starting(self, index: int) -> None:
        self.tracker.started(index)
        changed = self._look()
        if changed:
            self.tracker.suspect(changed, index, include_observer=False)

    def ended(self, index: int, failed: bool, halted: bool = False) -> list[Settled]:
        """``halted``: it failed importing a module another test had blocked,
        which no look between tests sees when the block is short."""
        self.watch.test_ended(self._items[index])
        changed = self._look()
        if changed:
            self.tracker.suspect(changed, index, include_observer=True)
        if halted:
            self.tracker.suspect([HALTED], index, include_observer=False)
        return self.tracker.finished(index, failed)


def _field(report: Any, name: str) -> Any:
    """A report's attribute, from the report or from its sent form (a dict)."""
    return report.get(name) if isinstance(report, dict) else getattr(report, name, None)


def _failed(report: Any) -> bool:
    return _field(report, "outcome") == "failed"


def failed(reports: list[Any]) -> bool:
    return any(_failed(report) for report in reports)


HALTED = "blocked an import (a test beside it failed: None in sys.modules)"


def import_halted(reports: list[Any]) -> bool:
    """Whether a test failed with CPython's ``import of X halted; None in
    sys.modules``: a sys.modules entry set to None, by a test beside it."""
    return any(_failed(report) and "None in sys.modules" in str(_field(report, "longrepr")) for report in reports)


def _skipped_itself(report: Any) -> bool:
    """A skip at run time (``pytest.skip()``, ``importorskip``); an xfail is not one."""
    return _field(report, "outcome") == "skipped" and _field(report, "wasxfail") is None


def held_back(item: Any, reports: list[Any]) -> bool:
    """Whether a test's result waits to see whether a caught test ran beside
    it: it failed, or it skipped itself at run time (an import another test
    blocked, a state another test removed); a skip or skipif mark is its own."""
    if failed(reports):
        return True
    if item.get_closest_marker("skip") is not None or item.get_closest_marker("skipif") is not None:
        return False
    return any(_skipped_itself(report) for report in reports)


def _outcome(reports: list[Any]) -> str:
    if failed(reports):
        return "failed"
    return "skipped" if any(_skipped_itself(report) for report in reports) else "passed"


def again_note(nodeid: str, first: list[Any], beside: str, again: list[Any] | None = None) -> str:
    """``test_x failed beside test_y (which ...); run again alone, it passed``."""
    was = _outcome(first)
    if again is None:
        return f"{nodeid} {was} beside {beside} (--strict-threads)"
    now = _outcome(again)
    return f"{nodeid} {was} beside {beside}; run again alone, it {now + ' again' if now == was else now}"
