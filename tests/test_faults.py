"""A standing fault matrix: one misbehaving test (or fixture) in a small suite, in every mode.

Each cell runs the suite as a user would and checks what fleet promises:
junit lists every collected test exactly once, the misbehaving test is the
one blamed (with its cause in the text), the exit code is pytest's for the
situation (1 for failures and crashes, 2 for interrupts), no process the run
started is alive a second later, and the run ends within a bound. Where
serial pytest itself cannot survive a fault (a signal kills the process that
runs the test), the cell says what fleet promises instead: with worker
processes, the run goes on; with threads, fleet dies as serial pytest does.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

MODES = {
    "serial": [],
    "mt4": ["--mt", "4", "--group-unit", "function"],
    "mp2": ["--mp", "2"],
    "mp2-mt2": ["--mp", "2", "--mt", "2", "--group-unit", "function"],
}
PROCESSES = {"mp2", "mp2-mt2"}

# Every test records its process, to check none outlives the run.
CONFTEST = r'''
import os, pytest

@pytest.fixture(autouse=True)
def _record_process():
    with open(os.path.join(os.path.dirname(__file__), "pids.txt"), "a") as f:
        f.write(f"{os.getpid()}\n")
    yield
'''

PLAIN = """
import time

def test_{n}_a():
    time.sleep(0.1)

def test_{n}_b():
    time.sleep(0.1)

def test_{n}_c():
    time.sleep(0.1)
"""

FAULTY = """
import ctypes, os, signal, subprocess, sys, threading, time

def test_before():
    time.sleep(0.1)

def test_fault():
{body}

def test_after():
    time.sleep(0.1)
"""

# fault -> (the faulty test's body, what fleet says about it)
TEST_FAULTS = {
    "sigkill": ("os.kill(os.getpid(), signal.SIGKILL)", "crashed: signal 9 (SIGKILL)"),
    "segfault": ("ctypes.string_at(0)", "crashed: signal 11 (SIGSEGV)"),
    "os-exit": ("os._exit(3)", "crashed: exit code 3"),
    "busy-loop": ("while True:\n        pass", "Timeout"),
    "sleep": ("time.sleep(3600)", "Timeout"),
    "deadlock": ("lock = threading.Lock()\n    lock.acquire()\n    lock.acquire()", "Timeout"),
    "memory-error": ("raise MemoryError", "MemoryError"),
    "allocation": ("b'x' * (16 << 30)", "MemoryError"),
    "sys-exit": ("sys.exit(3)", "SystemExit"),
    "close-stdout": ("sys.stdout.close()", "I/O operation on closed file"),
    "close-fd1": ("os.close(1)\n    time.sleep(0.2)", ""),
    "child-left": (
        "with open('child.pid', 'w') as f:\n        f.write(str(subprocess.Popen(['sleep', '60']).pid))", ""
    ),
}
KILLS_THE_PROCESS = {"sigkill", "segfault", "os-exit"}
PASSES = {"close-fd1", "child-left"}
SPREADS_SERIALLY = {"close-stdout"}


def suite(pytester: pytest.Pytester, body: str) -> int:
    """Eight tests in three modules; returns how many."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_fault=FAULTY.format(body="    " + body))
    for n in range(2):
        pytester.makepyfile(**{f"test_plain{n}": PLAIN.format(n=n)})
    return 9


def run(pytester: pytest.Pytester, mode: str, *args: str, limit: int | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--junitxml", "junit.xml", *MODES[mode], *args]

    def limited() -> None:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # Output goes to files, not pipes: a child a test leaves behind may hold
    # the run's stdout open (under threads fd 1 is not captured per test).
    start = time.monotonic()
    with open(pytester.path / "out.txt", "w+") as out, open(pytester.path / "err.txt", "w+") as err:
        process = subprocess.run(
            command, cwd=pytester.path, stdout=out, stderr=err, timeout=timeout, preexec_fn=limited,
            env={**os.environ, "PYTEST_ADDOPTS": "-p no:asyncio -p no:randomly"},
        )
        out.seek(0), err.seek(0)
        result = subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
    result.seconds = time.monotonic() - start  # type: ignore[attr-defined]
    return result


def junit(pytester: pytest.Pytester) -> dict[str, list[str]]:
    """Test name -> the outcomes of its testcase entries (one entry expected)."""
    cases: dict[str, list[str]] = {}
    for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        cases.setdefault(case.get("name"), []).append(kinds[0] if kinds else "passed")
    return cases


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def assert_no_process_left(pytester: pytest.Pytester, extra: list[int] = ()) -> None:
    pids = pytester.path / "pids.txt"
    started = {int(p) for p in pids.read_text().split()} if pids.exists() else set()
    started |= set(extra)
    started.discard(os.getpid())
    deadline = time.monotonic() + 1.5
    while any(alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in started if alive(p)], "a process the run started is still alive"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", TEST_FAULTS)
def test_a_misbehaving_test(pytester: pytest.Pytester, fault: str, mode: str) -> None:
    body, blame = TEST_FAULTS[fault]
    total = suite(pytester, body)
    limit = 2 << 30 if fault == "allocation" else None
    result = run(pytester, mode, "--test-timeout", "2", limit=limit)
    output = result.stdout + result.stderr
    assert result.seconds < 60, output
    if fault in KILLS_THE_PROCESS and mode not in PROCESSES:
        # serial pytest dies with the process that runs the test; so does a
        # run on threads (one process). fleet promises nothing more here.
        assert result.returncode != 0
        return
    cases = junit(pytester)
    assert len(cases) == total, cases
    if fault in SPREADS_SERIALLY and mode == "serial":
        # serially every later test errors on the closed file; fleet keeps
        # the failure to the test that closed it
        assert cases["test_fault"][0] == "failure" and result.returncode == 1, output
        return
    assert all(len(entries) == 1 for entries in cases.values()), cases
    others = {name: entries for name, entries in cases.items() if name != "test_fault"}
    assert all(entries == ["passed"] for entries in others.values()), output
    if fault in PASSES:
        assert cases["test_fault"] == ["passed"], output
        assert result.returncode == 0, output
    else:
        assert cases["test_fault"][0] in ("failure", "error"), output
        assert result.returncode == 1, output
        assert blame in output, output
    child = [int((pytester.path / "child.pid").read_text())] if fault == "child-left" else []
    if mode in PROCESSES:  # a test's own child goes with its worker; serially it is the test's business
        assert_no_process_left(pytester, child)
    else:
        assert_no_process_left(pytester)
        for pid in child:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("mode", MODES)
def test_keyboard_interrupt_in_a_test_interrupts_the_run(pytester: pytest.Pytester, mode: str) -> None:
    suite(pytester, "raise KeyboardInterrupt")
    result = run(pytester, mode)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "KeyboardInterrupt" in output and "INTERNALERROR" not in output, output
    # as serially, the tests reported are the ones that ran, each once
    reported = junit(pytester)
    assert all(len(entries) == 1 for entries in reported.values())
    assert_no_process_left(pytester)


@pytest.mark.parametrize("mode", [["--mt", "2"], ["--mp", "1", "--mt", "2"]], ids=["mt2", "mp1-mt2"])
def test_no_test_starts_after_a_keyboard_interrupt(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makepyfile(test_a="""
        def test_interrupts():
            raise KeyboardInterrupt
        def test_next():
            pass
        """)
    pytester.makepyfile(test_b="import time\ndef test_waits():\n    time.sleep(0.3)\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *mode, timeout=120)
    assert result.ret == 2
    result.stdout.no_fnmatch_line("*test_next*")


SESSION = """
import ctypes, os, time, pytest

@pytest.fixture(scope="session")
def shared():
{setup}
    yield "value"
{teardown}

@pytest.fixture(autouse=True)
def _uses_it(shared):
    pass
"""

# fault -> (set-up code, teardown code, what fleet says)
SESSION_FAULTS = {
    "setup-raises": ("    raise RuntimeError('set-up breaks')", "    pass", "set-up breaks"),
    "setup-crashes": ("    ctypes.string_at(0)", "    pass", "while setting up the session fixture shared"),
    "setup-exits": ("    os._exit(3)", "    pass", "while setting up the session fixture shared"),
    "teardown-raises": ("    pass", "    raise RuntimeError('teardown breaks')", "teardown breaks"),
    "teardown-crashes": ("    pass", "    ctypes.string_at(0)", "crashed: signal 11 (SIGSEGV) while tearing down"),
    "teardown-exits": ("    pass", "    os._exit(3)", "crashed: exit code 3 while tearing down"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", SESSION_FAULTS)
def test_a_misbehaving_session_fixture(pytester: pytest.Pytester, fault: str, mode: str) -> None:
    setup, teardown, blame = SESSION_FAULTS[fault]
    pytester.makeconftest(CONFTEST + SESSION.format(setup=setup, teardown=teardown))
    for n in range(3):
        pytester.makepyfile(**{f"test_plain{n}": PLAIN.format(n=n)})
    result = run(pytester, mode, "--max-worker-restart", "1") if mode in PROCESSES else run(pytester, mode)
    output = result.stdout + result.stderr
    assert result.seconds < 60, output
    crashes = fault.endswith(("crashes", "exits"))
    if crashes and mode not in PROCESSES:
        assert result.returncode != 0  # as serially: the process that runs the fixture dies
        return
    cases = junit(pytester)
    assert len(cases) == 9 and all(len(entries) == 1 for entries in cases.values()), cases
    assert result.returncode == 1, output
    assert blame in output, output
    if fault.startswith("setup"):
        assert all(entries != ["passed"] for entries in cases.values()), cases
    else:  # teardown: one test carries the error, as serially the last one does
        assert sum(entries != ["passed"] for entries in cases.values()) == 1, cases
    assert_no_process_left(pytester)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_to_the_runner(pytester: pytest.Pytester, mode: str, sig: int) -> None:
    pytester.makeconftest(CONFTEST)
    for n in range(3):
        pytester.makepyfile(**{f"test_slow{n}": "import time\n" + "".join(
            f"def test_{i}():\n    time.sleep(0.4)\n" for i in range(4))})
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *MODES[mode]]
    process = subprocess.Popen(
        command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTEST_ADDOPTS": "-p no:asyncio -p no:randomly"},
    )
    deadline = time.monotonic() + 30
    while not (pytester.path / "pids.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(sig)
    output, _ = process.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert process.returncode == 2, output  # interrupted, with the summary so far
        assert "KeyboardInterrupt" in output or "Interrupted" in output, output
    elif mode in PROCESSES:
        assert process.returncode in (2, -signal.SIGTERM), output  # the controller stops its workers first
    else:
        assert process.returncode == -signal.SIGTERM  # as serial pytest: terminated
    assert_no_process_left(pytester, [process.pid])
