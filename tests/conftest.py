"""Helpers for fleet's tests: every check is a real pytest run in a subprocess.

Subprocess runs keep each run's patched pytest state out of this process and
behave exactly as a user's command line would.
"""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

# Started in the background of a non-interactive shell, this run ignores
# SIGINT, and every pytest it starts would inherit that: the interrupt tests
# need Ctrl-C delivered (a handler set here is reset to the default in them).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str, timeout: float = 120) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)


def on_terminal(command: list[str], cwd: Path, columns: int = 120, env: dict[str, str] | None = None) -> str:
    """Run ``command`` with its output on a pseudo-terminal, as a user's shell
    would; everything it wrote, escape sequences included."""
    leader, follower = pty.openpty()
    env = dict(os.environ if env is None else env, COLUMNS=str(columns), LINES="30", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@contextmanager
def ray_authentication() -> Iterator[None]:
    """For a Ray cluster a test module starts: token authentication on (a fresh
    token for the cluster and every run against it), no outer ``RAY_ADDRESS``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "token")
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        patch.delenv("RAY_ADDRESS", raising=False)
        yield


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    found = result.parseoutcomes()
    # parseoutcomes() keeps pytest's singular/plural spelling; normalise it.
    return {k.rstrip("s") if k in ("errors", "warnings") else k: v for k, v in found.items()}


def read_events(path: Path) -> list[dict]:
    """JSON lines written by the probe fixtures of a test suite."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# A conftest that records, for each test, when it started and ended, on which
# thread, and how many tests ran at that moment; and for the shared fixtures,
# each set-up and teardown. Suites in the tests import it with `PROBE`.
PROBE = r'''
import json, os, threading, time
import pytest

_lock = threading.Lock()
_running = 0
EVENTS = os.path.join(os.path.dirname(__file__), "events.jsonl")

def record(**event):
    event["t"] = time.monotonic()
    event["thread"] = threading.current_thread().name
    with _lock, open(EVENTS, "a") as f:
        f.write(json.dumps(event) + "\n")

@pytest.fixture(autouse=True)
def _probe(request):
    global _running
    with _lock:
        _running += 1
        now = _running
    record(kind="start", test=request.node.nodeid, running=now)
    yield
    with _lock:
        _running -= 1
    record(kind="end", test=request.node.nodeid)
'''


@pytest.fixture
def probe(pytester: pytest.Pytester):
    """Write the probe conftest; return a function reading its events."""
    pytester.makeconftest(PROBE)

    def events() -> list[dict]:
        return read_events(pytester.path / "events.jsonl")

    return events


@pytest.fixture(autouse=True)
def _only_the_plugins_under_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the tests start load no pytest-asyncio (installed for its own test):
    newer versions warn on stderr in every project that does not configure it.
    (After pytester, which clears PYTEST_ADDOPTS when it is set up.)"""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:asyncio")


# The modes fleet runs in, as command-line arguments.
MODES = {
    "mt2": ["--mt", "2"],
    "mt4": ["--mt", "4"],
    "mp1": ["--mp", "1"],
    "mp2": ["--mp", "2"],
    "mp2-mt2": ["--mp", "2", "--mt", "2"],
}


def junit_outcomes(path: Path) -> dict[str, str]:
    """Per test id (classname::name): passed, failed, error, skipped or xfailed.

    A testcase listed twice is kept under ``id#2`` so a duplicate shows up as
    a difference."""
    import xml.etree.ElementTree as ET

    found: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
            elif child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                break
        while key in found:
            key += "#2"
        found[key] = outcome
    return found


def run_with_junit(pytester: pytest.Pytester, *args: str, timeout: float = 120) -> tuple[pytest.RunResult, dict[str, str]]:
    path = pytester.path / "junit.xml"
    if path.exists():
        path.unlink()
    result = run(pytester, "--junitxml", str(path), *args, timeout=timeout)
    return result, junit_outcomes(path) if path.exists() else {}


def assert_like_serial(pytester: pytest.Pytester, mode: list[str], *args: str) -> pytest.RunResult:
    """Run serially, then in ``mode``: the same outcome for every test, the same exit code."""
    serial, expected = run_with_junit(pytester, *args)
    parallel, got = run_with_junit(pytester, *mode, *args)
    assert got == expected, parallel.stdout.str()
    assert parallel.ret == serial.ret, parallel.stdout.str()
    return parallel
