"""Output capture per thread.

The process has one ``sys.stdout``; pytest's capture swaps it for one buffer,
which under threads would collect every running test's output into whichever
test reads it first. While fleet runs tests on threads, ``sys.stdout`` and
``sys.stderr`` are :class:`ThreadRoutedStream` objects that send each write
to the buffer of the test running on the writing thread. Threads that run no
test (the main thread, threads a test started) write straight through.

With ``-s`` nothing is captured: each line a worker writes goes to the
terminal prefixed with the worker's name, whole lines at a time so two
threads never interleave within a line.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from typing import Any, Generator, Iterator, NamedTuple

import pytest

from fleet.state import internals
from fleet.state.context import current


def _buffer() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="", write_through=True)


def _drain(buffer: io.TextIOWrapper) -> str:
    raw = buffer.buffer
    text = raw.getvalue().decode("utf-8", "replace")
    raw.seek(0)
    raw.truncate()
    return text


class _Targets(threading.local):
    # per stream name: the test's capture buffer (set per phase) and a capsys buffer
    item: dict[str, io.TextIOWrapper] | None = None
    fixture: dict[str, io.TextIOWrapper] | None = None
    passthrough = False
    partial: dict[str, str] | None = None
    # this thread's reusable per-phase buffers (drained at the end of each phase)
    spare: dict[str, io.TextIOWrapper] | None = None


_targets = _Targets()


class ThreadRoutedStream:
    """Stands in for sys.stdout/sys.stderr; each write goes to its thread's test."""

    def __init__(self, name: str, terminal: Any, tee: bool) -> None:
        self._name = name
        self._terminal = terminal
        self._tee = tee
        self._terminal_lock = threading.Lock()

    def _target(self) -> io.TextIOWrapper | None:
        if _targets.passthrough:
            return None
        if _targets.fixture is not None:
            return _targets.fixture[self._name]
        if _targets.item is not None:
            return _targets.item[self._name]
        return None

    def write(self, text: str) -> int:
        target = self._target()
        if target is not None:
            target.write(text)
            if not (self._tee and _targets.fixture is None):
                return len(text)
        self._write_terminal(text)
        return len(text)

    def _write_terminal(self, text: str) -> None:
        worker = current.worker
        if worker is None or _targets.passthrough:
            with self._terminal_lock:
                self._terminal.write(text)
                self._terminal.flush()
            return
        if _targets.partial is None:
            _targets.partial = {}
        pending = _targets.partial.get(self._name, "") + text
        *lines, rest = pending.split("\n")
        _targets.partial[self._name] = rest
        if lines:
            out = "".join(f"[{worker}] {line}\n" for line in lines)
            with self._terminal_lock:
                self._terminal.write(out)
                self._terminal.flush()

    def flush_partial(self) -> None:
        """Write out a worker's unfinished line (at the end of each test phase)."""
        if _targets.partial and _targets.partial.get(self._name):
            self._write_terminal("\n")

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        target = self._target()
        if target is None:
            self._terminal.flush()

    def isatty(self) -> bool:
        target = self._target()
        return False if target is not None else self._terminal.isatty()

    def __getattr__(self, name: str) -> Any:
        target = self._target()
        return getattr(target if target is not None else self._terminal, name)


class CaptureResult(NamedTuple):
    out: Any
    err: Any


class InertGlobalCapture:
    """Stands where pytest keeps its global capture while fleet runs threads.

    Output lives per thread, so this holds nothing; it answers what pytest and
    plugins ask of a global capture (pytest-timeout reads it on a timeout).
    """

    def start_capturing(self) -> None: ...
    def stop_capturing(self) -> None: ...
    def suspend_capturing(self, in_: bool = False) -> None: ...
    def resume_capturing(self) -> None: ...
    def pop_outerr_to_orig(self) -> tuple[str, str]:
        return "", ""

    def is_started(self) -> bool:
        return False

    def readouterr(self) -> CaptureResult:
        return CaptureResult("", "")


# Copies of file descriptors 1 and 2 made when threads start: a test that
# closes or replaces one would take the run's own output with it.
_std_fds: dict[int, tuple[int, tuple[int, int]]] = {}


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        stat = os.fstat(fd)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def repair_std_fds() -> list[int]:
    """Put back file descriptor 1 or 2 if a test closed or replaced it; the ones put back."""
    repaired = []
    for fd, (copy, identity) in _std_fds.items():
        if _identity(fd) != identity:
            os.dup2(copy, fd)
            repaired.append(fd)
    return repaired


class ThreadCapture:
    """Installs routed streams and per-test capture for the duration of a run."""

    def __init__(self, config: pytest.Config) -> None:
        method = config.getoption("capture", "fd")
        self.live = method == "no"
        self.tee = method == "tee-sys"
        self._capman = internals.capture_manager(config)
        self._saved: dict[str, Any] = {}
        self._taken_over = contextlib.ExitStack()

    def install(self) -> None:
        for fd in (1, 2):
            identity = _identity(fd)
            if identity is not None:
                _std_fds[fd] = (os.dup(fd), identity)
        if self._capman is not None:
            self._taken_over.enter_context(
                internals.capture_taken_over(self._capman, self.item_capture, InertGlobalCapture())
            )
        self._taken_over.enter_context(internals.subtest_capture_replaced(subtest_output))
        self._saved["stdout"], self._saved["stderr"] = sys.stdout, sys.stderr
        self.stdout = ThreadRoutedStream("stdout", sys.stdout, self.tee)
        self.stderr = ThreadRoutedStream("stderr", sys.stderr, self.tee)
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def uninstall(self) -> None:
        sys.stdout, sys.stderr = self._saved["stdout"], self._saved["stderr"]
        self._taken_over.close()
        repair_std_fds()
        while _std_fds:
            os.close(_std_fds.popitem()[1][0])

    @contextlib.contextmanager
    def item_capture(self, when: str, item: pytest.Item) -> Generator[None, None, None]:
        __tracebackhide__ = True
        buffers = None
        if not self.live:
            if _targets.spare is None:
                _targets.spare = {"stdout": _buffer(), "stderr": _buffer()}
            buffers = _targets.spare
        _targets.item = buffers
        try:
            yield
        finally:
            _targets.item = None
            self.stdout.flush_partial()
            self.stderr.flush_partial()
            if buffers is not None:
                for name, buffer in buffers.items():
                    item.add_report_section(when, name, "" if buffer.closed else _drain(buffer))
                if any(buffer.closed for buffer in buffers.values()):
                    # the test closed sys.stdout or sys.stderr: its failure, as
                    # serially, but the next test gets fresh buffers
                    _targets.spare = None
                    raise ValueError("I/O operation on closed file (the test closed sys.stdout or sys.stderr)")


class ThreadCaptureFixture:
    """``capsys``/``capsysbinary`` for one test on one thread."""

    def __init__(self, binary: bool) -> None:
        self._binary = binary
        self._buffers = {"stdout": _buffer(), "stderr": _buffer()}
        self._outer = _targets.fixture
        _targets.fixture = self._buffers

    def readouterr(self) -> CaptureResult:
        out, err = _drain(self._buffers["stdout"]), _drain(self._buffers["stderr"])
        if self._binary:
            return CaptureResult(out.encode("utf-8"), err.encode("utf-8"))
        return CaptureResult(out, err)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        before = _targets.passthrough
        _targets.passthrough = True
        try:
            yield
        finally:
            _targets.passthrough = before

    def close(self) -> None:
        """Give what the test did not read back to the test's own capture."""
        _targets.fixture = self._outer
        out, err = _drain(self._buffers["stdout"]), _drain(self._buffers["stderr"])
        if out:
            sys.stdout.write(out)
        if err:
            sys.stderr.write(err)


class CaptureFixtures:
    """Thread-safe ``capsys``/``capsysbinary``, registered only while fleet runs threads."""

    @pytest.fixture
    def capsys(self) -> Iterator[ThreadCaptureFixture]:
        fixture = ThreadCaptureFixture(binary=False)
        yield fixture
        fixture.close()

    @pytest.fixture
    def capsysbinary(self) -> Iterator[ThreadCaptureFixture]:
        fixture = ThreadCaptureFixture(binary=True)
        yield fixture
        fixture.close()


class SubtestOutput:
    out = ""
    err = ""


@contextlib.contextmanager
def subtest_output(request: Any) -> Iterator[SubtestOutput]:
    """One subtest's output, captured on its thread (what pytest's subtests
    show with a failed subtest). Not captured under ``-s`` or inside capsys."""
    captured = SubtestOutput()
    if not (_targets.item is not None and _targets.fixture is None and not _targets.passthrough):
        yield captured
        return
    fixture = ThreadCaptureFixture(binary=False)
    try:
        yield captured
    finally:
        captured.out, captured.err = fixture.readouterr()
        fixture.close()


@contextlib.contextmanager
def collect_output() -> Iterator[dict[str, str]]:
    """What this thread writes meanwhile, outside any test: ``{"stdout": ..., "stderr": ...}``.

    Needs the routed streams of :class:`ThreadCapture` in place.
    """
    buffers = {"stdout": _buffer(), "stderr": _buffer()}
    before, _targets.item = _targets.item, buffers
    collected: dict[str, str] = {}
    try:
        yield collected
    finally:
        _targets.item = before
        collected.update((name, _drain(buffer)) for name, buffer in buffers.items())
