"""Helpers for the plugin compatibility suite.

Every test module here holds one plugin's suite (``FILES``: path -> text) and
names the distributions it needs (``PLUGINS``). A test writes the suite with
``pytester``, runs it as a subprocess serially and in one of fleet's modes,
and checks the parallel run against the serial one: the same outcome per test
(junit), the same exit code, the same counts line, and the plugin's own output.

Only the plugins a module names are loaded in its runs: every other installed
pytest plugin (they are all installed together, from ``.[plugins]``) is turned
off with ``-p no:NAME`` through ``PYTEST_ADDOPTS``, so pytest-randomly does not
shuffle the coverage suite and pytest-xdist is not loaded unless a test asks.

The serial run of a suite is made once per outer test session (all four mode
cells of a test share it), in its own copy of the suite.
"""

from __future__ import annotations

import base64
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import pytest

# tests/ is on sys.path (tests/conftest.py is the module ``conftest``).
from conftest import junit_outcomes

# The modes every plugin suite runs in; "serial" is fleet installed, not switched on.
MODES: dict[str, list[str]] = {
    "serial": [],
    "mt4": ["--mt", "4"],
    "mp2": ["--mp", "2"],
    "mp2-mt2": ["--mp", "2", "--mt", "2"],
}
MODE_IDS = list(MODES)

# A run that takes longer than this has hung (the suites take a few seconds).
RUN_TIMEOUT = 40.0


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def blocked_plugins(keep: tuple[str, ...]) -> list[str]:
    """Entry-point names of the installed pytest plugins not in ``keep``
    (distribution names), fleet excepted."""
    wanted = {_norm(d) for d in keep} | {"pytest-fleet"}
    names = set()
    for ep in entry_points(group="pytest11"):
        dist = _norm(ep.dist.name) if ep.dist is not None else ""
        if dist not in wanted:
            names.add(ep.name)
    return sorted(names)


@pytest.fixture(autouse=True)
def _only_the_plugins_under_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Overrides tests/conftest.py's fixture of the same name: here the runs load
    exactly the plugins the module names in ``PLUGINS``."""
    keep = tuple(getattr(request.module, "PLUGINS", ()))
    monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(f"-p no:{n}" for n in blocked_plugins(keep)))
    for var in ("DJANGO_SETTINGS_MODULE", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT",
                "PYTEST_XDIST_TESTRUNUID", "PYTEST_TIMEOUT", "COVERAGE_PROCESS_START",
                "FLEET_START_METHOD"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------- one run


_COUNTS = re.compile(r"^=+ (.*?) in \d+(?:\.\d+)?s(?: \([0-9:]+\))? =+$")


@dataclass(repr=False)
class Run:
    """One pytest run of a suite, and what it left behind."""

    mode: str
    path: Path
    ret: int | None
    stdout: str
    stderr: str
    junit: dict[str, str]
    messages: dict[str, str]
    hung: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Run({self.mode}, exit {self.ret}, {self.counts!r})"

    @property
    def output(self) -> str:
        return self.stdout + ("\n--- stderr ---\n" + self.stderr if self.stderr.strip() else "")

    @property
    def counts(self) -> str | None:
        """pytest's closing line without its duration, e.g. ``2 failed, 5 passed, 5 rerun``."""
        for line in reversed(self.stdout.splitlines()):
            m = _COUNTS.match(line.strip())
            if m:
                return m.group(1)
        return None

    def lines(self, pattern: str) -> list[str]:
        """Lines of stdout matching the regular expression, stripped."""
        rx = re.compile(pattern)
        return [line.strip() for line in self.stdout.splitlines() if rx.search(line)]

    def tail(self, n: int = 2000) -> str:
        text = self.output
        return text if len(text) <= n else "...\n" + text[-n:]

    def file(self, name: str) -> Path:
        return self.path / name


def junit_messages(path: Path) -> dict[str, str]:
    """Per test id: the message of its failure/error/skip element ('' if none)."""
    found: dict[str, str] = {}
    if not path.exists():
        return found
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        message = ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                message = child.get("message") or ""
                break
        while key in found:
            key += "#2"
        found[key] = message
    return found


class Suite:
    """One plugin suite, written afresh into a directory per run."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                 files: dict[str, str]) -> None:
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.files = files
        self._n = 0

    def copy(self, label: str) -> Path:
        """A fresh copy of the suite in its own directory."""
        self._n += 1
        where = self.pytester.path / f"{self._n:02d}-{label}"
        for rel, text in self.files.items():
            target = where / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                target.write_bytes(text)
            else:
                target.write_text(textwrap.dedent(text).lstrip("\n"))
        where.mkdir(parents=True, exist_ok=True)
        return where

    def run(self, mode: str, *args: str, where: Path | None = None, junit: bool = True,
            timeout: float = RUN_TIMEOUT) -> Run:
        """Run pytest in ``where`` (default: a fresh copy) in ``mode``."""
        if where is None:
            where = self.copy(mode)
        xml = where / "junit.xml"
        if xml.exists():
            xml.unlink()
        argv = [*MODES[mode], *args]
        if junit:
            argv = ["--junitxml", str(xml), *argv]
        with self.monkeypatch.context() as m:
            m.chdir(where)
            try:
                result = self.pytester.runpytest_subprocess(*argv, timeout=timeout)
            except self.pytester.TimeoutExpired:
                out = self.pytester.path / "stdout"
                err = self.pytester.path / "stderr"
                return Run(mode, where, None,
                           out.read_text(errors="replace") if out.exists() else "",
                           err.read_text(errors="replace") if err.exists() else "",
                           junit_outcomes(xml) if xml.exists() else {},
                           junit_messages(xml), hung=True)
        stdout = "\n".join(result.outlines)
        stderr = "\n".join(result.errlines)
        return Run(mode, where, int(result.ret), stdout, stderr,
                   junit_outcomes(xml) if xml.exists() else {}, junit_messages(xml))


# ---------------------------------------------------------------- checks


def _diff(expected: dict, got: dict, what: str, mode: str) -> str:
    """One line naming the first differences, then one line per test."""
    lines = []
    for key in sorted(set(expected) | set(got)):
        a, b = expected.get(key, "(absent)"), got.get(key, "(absent)")
        if a != b:
            lines.append(f"{key}: serial {a}, {mode} {b}")
    first = "; ".join(lines[:2]) + ("; ..." if len(lines) > 2 else "")
    return f"{what} differ from serial in {len(lines)} test(s): {first}\n  " + "\n  ".join(lines)


def assert_finished(run: Run) -> None:
    assert not run.hung, f"[{run.mode}] the run did not finish within {RUN_TIMEOUT:.0f}s (hung)\n{run.tail()}"
    assert run.counts is not None, (
        f"[{run.mode}] the run ended (exit {run.ret}) without pytest's closing counts line\n{run.tail()}")


def assert_counts(run: Run, expected: str) -> None:
    """pytest's closing counts line is the serial result the suite was written for."""
    assert_finished(run)
    assert run.counts == expected, f"[{run.mode}] counts line {run.counts!r}, expected {expected!r}\n{run.tail()}"


def assert_like_serial(got: Run, serial: Run) -> None:
    """Outcomes per test, exit code and counts line equal to the serial run's."""
    assert_finished(serial)
    if got is serial:
        return
    assert_finished(got)
    if got.junit != serial.junit:
        pytest.fail(f"[{got.mode}] " + _diff(serial.junit, got.junit, "per-test outcomes", got.mode)
                    + "\n" + got.tail(), pytrace=False)
    assert got.ret == serial.ret, f"[{got.mode}] exit code {got.ret}, serial {serial.ret}\n{got.tail()}"
    assert got.counts == serial.counts, (
        f"[{got.mode}] counts line {got.counts!r}, serial {serial.counts!r}\n{got.tail()}")


def html_blob(path: Path) -> dict:
    """The JSON pytest-html 4 embeds in its page."""
    import html as _html

    page = path.read_text()
    m = re.search(r'data-jsonblob="([^"]*)"', page)
    assert m, "no data-jsonblob in the pytest-html report"
    return json.loads(_html.unescape(m.group(1)))


def decode_extra(extra: dict) -> tuple:
    """(name, format_type, content) of a pytest-html extra, text decoded."""
    content = extra.get("content", "")
    if extra.get("format_type") == "text" and "base64," in content:
        try:
            content = base64.b64decode(content.split("base64,", 1)[1]).decode()
        except Exception:  # pragma: no cover - kept as is
            pass
    return (extra.get("name"), extra.get("format_type"), content)


# ---------------------------------------------------------------- fixtures


_SERIAL: dict[str, Any] = {}


class Compat:
    """What a compat test uses: its suite, runs, and the shared serial run."""

    def __init__(self, request: pytest.FixtureRequest, pytester: pytest.Pytester,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.request = request
        self.pytester = pytester
        self.monkeypatch = monkeypatch

    def suite(self, files: dict[str, str]) -> Suite:
        return Suite(self.pytester, self.monkeypatch, files)

    def against_serial(self, files: dict[str, str], mode: str, *args: str, key: str = "") -> tuple[Run, Run]:
        """Run ``files`` serially (once per session) and in ``mode``, and check the
        two alike (per-test outcomes, exit code, counts): ``(got, serial)``."""
        suite = self.suite(files)
        serial = self.serial(lambda: suite.run("serial", *args), key=key)
        got = serial if mode == "serial" else suite.run(mode, *args)
        assert_like_serial(got, serial)
        return got, serial

    def serial(self, make: Callable[[], Any], key: str = "") -> Any:
        """``make()`` once per outer session for this test function (and ``key``)."""
        node = self.request.node
        name = f"{node.module.__name__}::{getattr(node, 'originalname', node.name)}::{key}"
        if name not in _SERIAL:
            _SERIAL[name] = make()
        return _SERIAL[name]


@pytest.fixture
def compat(request: pytest.FixtureRequest, pytester: pytest.Pytester,
           monkeypatch: pytest.MonkeyPatch) -> Compat:
    return Compat(request, pytester, monkeypatch)


# Parametrize a test over the four modes: each (plugin, mode) is its own test id.
over_modes = pytest.mark.parametrize("mode", MODE_IDS)
