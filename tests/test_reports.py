"""Reports as in a serial run: junit, --lf, --durations, Ctrl-C, pytest.exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import outcomes, read_events, run

SUITE = """
import time, pytest
@pytest.mark.parametrize("n", range(12))
def test_n(n):
    time.sleep(0.02)
    assert n not in (3, 7)
"""


def test_junit_lists_every_test_once_with_outcomes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=SUITE, test_b=SUITE)
    serial = run(pytester, "--junitxml=serial.xml")
    threaded = run(pytester, "--mt", "6", "--group-unit", "function", "--junitxml=threads.xml")
    assert threaded.ret == serial.ret == 1

    def summary(name: str) -> tuple[dict, list]:
        root = ET.parse(pytester.path / name).getroot()
        suite = root.find("testsuite")
        counts = {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")}
        cases = sorted(
            (c.get("classname"), c.get("name"), c.find("failure") is not None)
            for c in suite.iter("testcase")
        )
        return counts, cases

    assert summary("threads.xml") == summary("serial.xml")
    counts, cases = summary("threads.xml")
    assert counts["tests"] == "24" and counts["failures"] == "4"
    assert len(set(cases)) == 24


def test_last_failed_reruns_only_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=SUITE)
    first = pytester.runpytest_subprocess("--mt", "4", "--group-unit", "function")
    assert outcomes(first) == {"passed": 10, "failed": 2}
    again = pytester.runpytest_subprocess("--mt", "4", "--lf", "-v")
    serial = pytester.runpytest_subprocess("--lf")
    assert outcomes(again) == outcomes(serial) == {"failed": 2}
    again.stdout.fnmatch_lines(["*rerun previous 2 failures*"])
    again.stdout.fnmatch_lines(["*test_n?3?*FAILED*", "*test_n?7?*FAILED*"])


def test_durations(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time
        def test_slow(): time.sleep(0.3)
        def test_fast(): pass
        """
    )
    result = run(pytester, "--mt", "2", "--group-unit", "function", "--durations=1")
    result.stdout.fnmatch_lines(["*slowest 1 durations*", "0.3*s call*test_slow*"])


def test_pytest_exit_in_a_test_ends_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest
        def test_stop():
            time.sleep(0.05)
            pytest.exit("enough", returncode=3)
        def test_other():
            time.sleep(0.2)
        """
    )
    result = run(pytester, "--mt", "2", "--group-unit", "function")
    assert result.ret == 3
    assert "enough" in result.stdout.str()


def test_ctrl_c_tears_down_and_prints_the_summary(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest, pathlib
        @pytest.fixture(scope="session")
        def resource():
            yield
            pathlib.Path("torn_down").write_text("yes")
        """
    )
    pytester.makepyfile(
        "import time, pathlib\n"
        + "".join(
            f"def test_{i:02d}(resource):\n"
            f"    pathlib.Path('started').touch()\n"
            f"    time.sleep(0.2)\n"
            for i in range(40)
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mt", "2",
         "--group-unit", "function"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 30
    while not (pytester.path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out
    assert (pytester.path / "torn_down").read_text() == "yes"
    last = out.strip().splitlines()[-1]
    assert " passed" in last and "40 passed" not in last, last


def test_start_up_check_refuses_a_pytest_without_a_touchpoint(pytester: pytest.Pytester) -> None:
    """Simulate a pytest release that dropped a private name fleet uses."""
    pytester.makeconftest(
        """
        import _pytest.logging
        def pytest_configure(config):
            del _pytest.logging.LoggingPlugin._runtest_for
        """
    )
    pytester.makepyfile("def test_a(): pass")
    result = run(pytester, "--mt", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [l for l in result.stderr.lines if l.strip()]
    assert len(lines) == 1 and "LoggingPlugin._runtest_for" in lines[0], lines
    assert "fleet needs" in lines[0]


def test_start_up_check_refuses_an_unknown_setupstate_method(pytester: pytest.Pytester) -> None:
    """A pytest whose SetupState grew a method fleet's replacement lacks."""
    pytester.makeconftest(
        """
        import _pytest.runner
        def pytest_configure(config):
            _pytest.runner.SetupState.rewind = lambda self: None
        """
    )
    pytester.makepyfile("def test_a(): pass")
    result = run(pytester, "--mt", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [l for l in result.stderr.lines if l.strip()]
    assert len(lines) == 1 and "SetupState.rewind" in lines[0], lines
