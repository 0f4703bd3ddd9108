"""``--test-timeout``: a test running longer fails as timed out.

The limit comes from ``@pytest.mark.test_timeout(seconds)``, else
``--test-timeout``, else the ini option ``test_timeout``; 0 means none. The
names differ from pytest-timeout's (``--timeout``, ``timeout``) so both
plugins can be installed together.

A watchdog thread keeps the deadlines of the tests running in this process.
What happens at a deadline depends on where the test runs: in a worker
process the controller is told and kills the process (the only way to stop
a test stuck anywhere); on a thread of this process, the test's thread gets
a ``Failed`` exception raised in it, which takes effect the next time that
thread runs Python code (a test blocked in one long C call, such as a sleep,
fails when the call returns); on the main thread (a serial run) SIGALRM
raises it, which also interrupts a blocking call.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Generator, Iterator

import pytest

from fleet.front.options import MAX_TIMEOUT, default_timeout, timeout_for

def describe(seconds: float) -> str:
    return f"Timeout: the test ran longer than {seconds:g} s (--test-timeout)"


class TestTimedOut(pytest.fail.Exception):  # type: ignore[misc, name-defined]
    """Raised in a test's thread at its deadline."""

    seconds = 0.0
    message = ""

    def __init__(self, msg: str | None = None, pytrace: bool = False) -> None:
        super().__init__(msg or self.message or describe(self.seconds), pytrace=pytrace)


# (thread ident, test, seconds, the failure's text or "" for fleet's own)
Expired = Callable[[int, pytest.Item, float, str], None]


# How long a test raised a timeout in may take to end before its thread is
# given up on (it is blocked outside Python, where no exception reaches it).
STUCK_GRACE = 2.0


class Watchdog:
    """Deadlines of the tests running in this process, one per thread.

    At a test's deadline ``on_expired`` is called; if the test is still
    running ``STUCK_GRACE`` seconds later, ``on_stuck`` (when set: the
    thread executor gives up on the thread).
    """

    def __init__(self, on_expired: Expired) -> None:
        self._on_expired = on_expired
        self.raises_in_thread = on_expired is fail_in_thread
        self.on_stuck: Expired | None = None
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (deadline, thread ident, serial)
        self._running: dict[int, tuple[int, pytest.Item, float, str]] = {}
        # timed out, not ended yet: given up on at the second deadline
        self._overdue: dict[int, tuple[int, pytest.Item, float, str]] = {}
        self._serial = 0
        self._expired: set[int] = set()
        self._thread: threading.Thread | None = None

    def start(self, item: pytest.Item, seconds: float, message: str = "") -> None:
        """The test on this thread fails after ``seconds`` (with ``message``,
        else fleet's own text)."""
        ident = threading.get_ident()
        with self._cond:
            self._serial += 1
            self._running[ident] = (self._serial, item, seconds, message)
            heapq.heappush(self._heap, (time.monotonic() + _armable(seconds), ident, self._serial))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="fleet-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self) -> bool:
        """The test ended; True if its deadline had already passed."""
        ident = threading.get_ident()
        with self._cond:
            self._running.pop(ident, None)
            self._overdue.pop(ident, None)
            if ident in self._expired:
                self._expired.discard(ident)
                return True
            return False

    def _current(self, ident: int, serial: int) -> bool:
        entry = self._running.get(ident) or self._overdue.get(ident)
        return entry is not None and entry[0] == serial

    def _watch(self) -> None:
        with self._cond:
            while True:
                while self._heap and not self._current(self._heap[0][1], self._heap[0][2]):
                    heapq.heappop(self._heap)  # finished in time
                if self._heap and self._heap[0][0] <= time.monotonic():
                    _, ident, serial = heapq.heappop(self._heap)
                    if ident in self._running:
                        entry = self._running.pop(ident)
                        # under the lock: the test's thread cannot be past stop() meanwhile
                        self._expired.add(ident)
                        self._on_expired(ident, *entry[1:])
                        if self.on_stuck is not None:
                            self._overdue[ident] = entry
                            heapq.heappush(self._heap, (time.monotonic() + STUCK_GRACE, ident, serial))
                    else:
                        entry = self._overdue.pop(ident)
                        if self.on_stuck is not None:
                            self.on_stuck(ident, *entry[1:])
                    continue
                self._cond.wait(_armable(self._heap[0][0] - time.monotonic()) if self._heap else None)


def _armable(seconds: float) -> float:
    """A wait the timer and Condition.wait accept: longer ones (1e300, inf) raise OverflowError."""
    return max(0.0, min(seconds, MAX_TIMEOUT))


_MACHINERY = ("/_pytest/", "/pluggy/", "/fleet/", "threading.py")


def stack_of(ident: int) -> str:
    """Where the thread is, without pytest's, pluggy's and fleet's own frames."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    frames = [f for f in traceback.extract_stack(frame) if not any(m in f.filename for m in _MACHINERY)]
    return "".join(traceback.format_list(frames))


def timed_out(seconds: float, message: str = "") -> type[TestTimedOut]:
    """The exception a timed-out test fails with; it reads as pytest's own
    ``Failed: ...``, as pytest-timeout's does."""
    return type("Failed", (TestTimedOut,), {"seconds": seconds, "message": message, "__module__": "builtins"})


def fail_in_thread(ident: int, item: pytest.Item, seconds: float, message: str = "") -> None:
    """Raise TestTimedOut in the thread running ``item``."""
    exception = timed_out(seconds, message)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exception))


def _cancel_pending(ident: int) -> None:
    """Drop a TestTimedOut not yet raised (the test ended just in time)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


def cancel_here(watchdog: Watchdog) -> None:
    """The test on this thread ended: its deadline no longer holds."""
    if watchdog.stop() and watchdog.raises_in_thread:
        _cancel_pending(threading.get_ident())


class Timeouts:
    """The plugin: a watchdog around each test's protocol."""

    def __init__(self, config: pytest.Config) -> None:
        self.default = default_timeout(config)
        self.watchdog = Watchdog(fail_in_thread)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        __tracebackhide__ = True
        seconds = timeout_for(item, self.default)
        if not seconds:
            return (yield)
        if (
            self.watchdog.raises_in_thread
            and threading.current_thread() is threading.main_thread()
            and hasattr(signal, "setitimer")
        ):
            with _alarm(seconds):
                return (yield)
        self.watchdog.start(item, seconds)
        try:
            return (yield)
        finally:
            cancel_here(self.watchdog)


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """On the main thread (a serial run) SIGALRM also interrupts a blocking call."""

    def expired(signum: int, frame: Any) -> None:
        raise timed_out(seconds)()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, _armable(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
