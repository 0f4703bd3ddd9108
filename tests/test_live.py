"""Progress while the run goes (a live view on a terminal, SLOW lines in CI logs),
and the file reports: JUnit with each test's own output, pytest-html."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import on_terminal, outcomes, run

SLOW_SUITE = """
import time
def test_quick_1(): pass
def test_quick_2(): pass
def test_slow(): time.sleep(2.0)
def test_quick_3(): pass
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_off_a_terminal_the_output_is_pytests_plus_one_line_per_slow_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=SLOW_SUITE)
    result = run(pytester, "--mt", "2", "--group-unit", "function", "--slow-after", "0.5", "-p", "no:asyncio")
    assert outcomes(result) == {"passed": 4}
    out = result.stdout.str()
    slow = [line for line in out.splitlines() if line.startswith("SLOW")]
    assert len(slow) == 1
    assert re.fullmatch(r"SLOW \[t[01]\] test_s.py::test_slow still running after \ds \(--slow-after 0.5\)", slow[0])
    assert "\x1b[" not in out and "ETA" not in out  # no live view in a log


def run_on_terminal(pytester: pytest.Pytester, *args: str) -> str:
    """Run pytest with its output on a pseudo-terminal, as a user's shell would."""
    return on_terminal([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], pytester.path)


def test_on_a_terminal_a_live_view_shows_workers_running_tests_and_slow_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=SLOW_SUITE)
    raw = run_on_terminal(pytester, "--mt", "2", "--group-unit", "function", "--slow-after", "0.5",
                          "-p", "no:asyncio")
    text = ANSI.sub("", raw)
    assert "fleet" in text and "ETA" in text
    assert re.search(r"\b\d/4\b", text)  # done/total
    assert re.search(r"t[01]\s+test_s.py::test_slow\s+\d+\.\ds\s+SLOW", text)  # the worker row, flagged
    assert re.search(r"\d passed", text)  # outcomes so far
    assert "4 passed" in text.splitlines()[-1] or "4 passed" in text[-300:]  # pytest's own summary stays
    assert len([line for line in text.splitlines() if line.startswith("SLOW [")]) == 1


def test_no_live_on_a_terminal_keeps_pytests_output(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=SLOW_SUITE)
    text = ANSI.sub("", run_on_terminal(pytester, "--mt", "2", "--group-unit", "function", "--no-live",
                                        "--slow-after", "0.5", "-p", "no:asyncio"))
    assert "ETA" not in text
    progress = [line.strip() for line in text.splitlines() if re.fullmatch(r"\.+\s+\[\s*\d+%\]", line.strip())]
    assert progress and progress[-1].endswith("[100%]"), text  # pytest's own progress lines
    assert len([line for line in text.splitlines() if line.startswith("SLOW [")]) == 1
    assert "4 passed" in text


OUTPUT_SUITE = """
import logging, sys, pytest
@pytest.mark.parametrize("n", range(6))
def test_prints(n):
    print(f"out-{n}")
    sys.stderr.write(f"err-{n}\\n")
    logging.getLogger("suite").warning(f"log-{n}")
    assert n != 5
"""

MODES = {
    "threads": ("--mt", "3", "--group-unit", "function"),
    "processes": ("--mp", "2", "--group-unit", "function"),
    "processes x threads": ("--mp", "2", "--mt", "2", "--group-unit", "function"),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_junit_has_each_tests_own_output(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_out=OUTPUT_SUITE)
    result = run(pytester, "--junitxml=out.xml", "-o", "junit_logging=all", "-p", "no:asyncio", *MODES[mode])
    assert outcomes(result) == {"passed": 5, "failed": 1}
    cases = ET.parse(pytester.path / "out.xml").getroot().findall(".//testcase")
    assert sorted(c.get("name") for c in cases) == [f"test_prints[{n}]" for n in range(6)]
    for case in cases:
        n = case.get("name")[-2]
        out = "".join(e.text or "" for e in case.findall("system-out"))
        err = "".join(e.text or "" for e in case.findall("system-err"))
        assert f"out-{n}" in out and f"log-{n}" in out and f"err-{n}" in err
        others = [f"out-{k}" for k in range(6) if str(k) != n] + [f"err-{k}" for k in range(6) if str(k) != n]
        assert not any(other in out + err for other in others), case.get("name")
    assert len(ET.parse(pytester.path / "out.xml").getroot().findall(".//failure")) == 1


@pytest.mark.parametrize("mode", list(MODES))
def test_pytest_html_report(pytester: pytest.Pytester, mode: str) -> None:
    pytest.importorskip("pytest_html")
    pytester.makepyfile(test_out=OUTPUT_SUITE)
    result = run(pytester, "--html=report.html", "--self-contained-html", "-p", "no:asyncio", *MODES[mode])
    assert outcomes(result) == {"passed": 5, "failed": 1}
    page = (pytester.path / "report.html").read_text()
    for n in range(6):
        assert f"test_prints[{n}]" in page and f"out-{n}" in page
    assert re.search(r"5 Passed", page, re.I) and re.search(r"1 Failed", page, re.I)
