"""What a person reads: progress lines in a CI log and on a terminal, the banner of
an interrupted run, and the end of the run.

Progress is counted in lines ending with pytest's percentage (or count): a
parallel run prints at most a few more than a serial run of the same tests,
whatever the mode and verbosity, off a terminal and on one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MODES, on_terminal, outcomes, run

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROGRESS_END = re.compile(r"\[\s*\d+%\]$|\[\s*\d+/\d+\]$")
# A few more lines than serially: the run may end one line early to say something
A_FEW = 2
WIDTH = 80
PARALLEL = ["mt4", "mp2", "mp2-mt2"]
ENV = {**os.environ, "PYTEST_ADDOPTS": "-p no:asyncio -p no:randomly", "COLUMNS": str(WIDTH)}


def lines_of(output: str) -> list[str]:
    """The lines a reader sees: escape sequences gone, and of a line redrawn
    in place (``\\r``) only its last drawing."""
    text = ANSI.sub("", output).replace("\r\n", "\n")
    return [line.split("\r")[-1].rstrip() for line in text.split("\n")]


def progress_lines(output: str) -> list[str]:
    return [line for line in lines_of(output) if PROGRESS_END.search(line)]


def pytest_output(cwd: Path, *args: str, terminal: bool = False) -> str:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    if terminal:
        return on_terminal(command, cwd, columns=WIDTH, env=ENV)
    done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    return done.stdout


# -- progress ------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 trivial tests in 20 modules."""
    root = tmp_path_factory.mktemp("big")
    for module in range(20):
        (root / f"test_m{module:02d}.py").write_text("".join(f"def test_{i}(): pass\n" for i in range(100)))
    return root


_serial_counts: dict[tuple[Path, str, bool], int] = {}


def serial_count(suite: Path, verbosity: str, terminal: bool = False) -> int:
    """Serial pytest's progress lines for ``suite``, run once per verbosity and terminal."""
    key = (suite, verbosity, terminal)
    if key not in _serial_counts:
        args = [verbosity] if verbosity else []
        _serial_counts[key] = len(progress_lines(pytest_output(suite, *args, terminal=terminal)))
    return _serial_counts[key]


@pytest.mark.parametrize("verbosity", ["", "-q", "-qq", "-v"], ids=["default", "q", "qq", "v"])
@pytest.mark.parametrize("mode", PARALLEL)
def test_two_thousand_tests_print_as_many_progress_lines_as_serially(big_suite: Path, mode: str, verbosity: str) -> None:
    args = [verbosity] if verbosity else []
    output = pytest_output(big_suite, *MODES[mode], *args)
    progress = progress_lines(output)
    assert "2000 passed" in output or verbosity == "-qq", output[-2000:]  # -qq: no summary line
    assert len(progress) <= serial_count(big_suite, verbosity) + A_FEW, "\n".join(progress)
    assert progress[-1].endswith("[100%]")
    if verbosity == "-v":  # one line per test, naming its worker
        assert len(progress) == 2000
        assert all(re.search(r"::test_\d+ \[(p\d+)?(t\d+)?\] PASSED\s+\[", line) for line in progress), progress[:3]
    else:  # progress characters only, the width of the terminal
        assert all(re.fullmatch(r"\.+\s+\[\s*\d+%\]", line) for line in progress), progress[:3]
        assert all(len(line) <= WIDTH for line in progress)
        assert len(progress) >= 2000 // WIDTH
        assert sum(line.count(".") for line in progress) == 2000


@pytest.mark.parametrize("mode", PARALLEL)
def test_on_a_terminal_two_thousand_tests_print_as_many_progress_lines_as_serially(big_suite: Path, mode: str) -> None:
    output = pytest_output(big_suite, *MODES[mode], terminal=True)
    progress = progress_lines(output)
    assert "2000 passed" in ANSI.sub("", output)
    assert len(progress) <= serial_count(big_suite, "", terminal=True) + A_FEW, "\n".join(progress)
    assert all(re.fullmatch(r"\.+\s+\[\s*\d+%\]", line) for line in progress), progress[:3]


@pytest.mark.parametrize("style, end", [("count", r"\[\s*\d+/2000\]"), ("classic", r"")])
def test_console_output_style_is_kept(big_suite: Path, style: str, end: str) -> None:
    output = pytest_output(big_suite, "--mt", "4", "-o", f"console_output_style={style}")
    dots = [line for line in lines_of(output) if line.startswith(".")]
    assert all(re.fullmatch(r"\.+\s*" + end, line) and len(line) <= WIDTH for line in dots), dots[:3]
    assert sum(line.count(".") for line in dots) == 2000
    assert len(dots) <= 2000 // (WIDTH - 20) + 1


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The bundled example (README's first command), copied out of the repository."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    return tmp_path


@pytest.mark.parametrize("terminal", [False, True], ids=["log", "terminal"])
@pytest.mark.parametrize("mode", PARALLEL)
def test_the_bundled_example_prints_as_many_progress_lines_as_serially(example: Path, mode: str, terminal: bool) -> None:
    def fleet(*args: str) -> str:
        command = [sys.executable, "-m", "fleet", "examples", "-p", "no:cacheprovider", *args]
        if terminal:
            return on_terminal(command, example, columns=WIDTH, env=ENV)
        return subprocess.run(command, cwd=example, env=ENV, capture_output=True, text=True, timeout=300).stdout

    serial = progress_lines(fleet())
    output = fleet(*MODES[mode])
    progress = progress_lines(output)
    assert "52 passed" in output
    assert len(serial) == 4  # a line per module
    assert len(progress) <= len(serial) + A_FEW, "\n".join(progress)
    assert progress[-1].endswith("[100%]") and not any(".py" in line for line in progress)


SLOW_AMONG_QUICK = """
import time
def test_slow(): time.sleep(1.5)
"""


@pytest.mark.parametrize("verbosity", ["", "-q"], ids=["default", "q"])
def test_a_slow_line_comes_after_a_progress_line_with_its_percentage(pytester: pytest.Pytester, verbosity) -> None:
    pytester.makepyfile(
        test_quick="".join(f"def test_{i}(): pass\n" for i in range(40)), test_slow=SLOW_AMONG_QUICK,
    )
    args = [verbosity] if verbosity else []
    result = run(pytester, "--mt", "2", "--slow-after", "0.5", *args)
    assert outcomes(result) == {"passed": 41}
    lines = result.stdout.lines
    slow = [i for i, line in enumerate(lines) if "SLOW" in line]
    assert len(slow) == 1 and lines[slow[0]].startswith("SLOW [t"), lines
    before, after = lines[slow[0] - 1], lines[slow[0] + 1]
    assert re.fullmatch(r"\.+\s+\[\s*\d+%\]", before), lines  # a whole progress line, percentage and all
    assert re.fullmatch(r"\.+\s+\[100%\]", after), lines


def test_under_verbose_a_slow_line_stands_between_whole_test_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_quick="".join(f"def test_{i}(): pass\n" for i in range(10)), test_slow=SLOW_AMONG_QUICK,
    )
    result = run(pytester, "--mt", "2", "--slow-after", "0.5", "-v")
    assert outcomes(result) == {"passed": 11}
    lines = result.stdout.lines
    slow = [i for i, line in enumerate(lines) if "SLOW" in line]
    assert len(slow) == 1 and lines[slow[0]].startswith("SLOW [t"), lines
    test_line = r"test_\w+\.py::test_\w+ \[t\d\] PASSED\s+\[\s*\d+%\]"
    assert re.fullmatch(test_line, lines[slow[0] - 1]) and re.fullmatch(test_line, lines[slow[0] + 1]), lines
    assert len([line for line in lines if re.fullmatch(test_line, line)]) == 11


# -- interrupts ------------------------------------------------------------------

SLEEPERS = """
import pathlib, time
def test_quick(): pass
def test_sleeps_{m}():
    pathlib.Path("started_{m}").touch()
    time.sleep(3)
"""


def interrupted_run(path: Path, sig: int, *args: str) -> tuple[int, list[str]]:
    """Start a run, send ``sig`` once both sleeping tests run; the exit code and output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
    )
    deadline = time.monotonic() + 60
    while not all((path / f"started_{m}").exists() for m in "ab") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    process.send_signal(sig)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output.splitlines()


def banner(lines: list[str]) -> list[str]:
    """The interrupt banner: its title and the lines under it, to the summary line."""
    start = next(i for i, line in enumerate(lines) if line.startswith("!!!"))
    return lines[start:-1]


@pytest.mark.parametrize("mode", ["mt2", "mp2", "mp2-mt2"])
def test_ctrl_c_names_the_tests_that_were_running(pytester: pytest.Pytester, mode: str) -> None:
    for m in "ab":
        pytester.makepyfile(**{f"test_{m}": SLEEPERS.format(m=m)})
    code, lines = interrupted_run(pytester.path, signal.SIGINT, *MODES[mode])
    assert code == pytest.ExitCode.INTERRUPTED, lines
    shown = banner(lines)
    assert re.fullmatch(r"!+ KeyboardInterrupt !+", shown[0]), shown
    for m in "ab":  # where each is defined, its worker, and that it finished
        pattern = rf"test_{m}\.py:3: test_sleeps_{m} was running on (p\d)?(t\d)? \(\d+\.\ds\); it then finished: passed"
        assert any(re.fullmatch(pattern, line) for line in shown), shown
    assert not any("fleet" in line for line in shown), shown  # not fleet's own frame
    assert "4 passed" in lines[-1]


def test_sigterm_to_the_controller_says_terminated(pytester: pytest.Pytester) -> None:
    for m in "ab":
        pytester.makepyfile(**{f"test_{m}": SLEEPERS.format(m=m)})
    code, lines = interrupted_run(pytester.path, signal.SIGTERM, "--mp", "2")
    assert code == pytest.ExitCode.INTERRUPTED, lines
    shown = banner(lines)
    assert re.fullmatch(r"!+ Terminated \(SIGTERM\) !+", shown[0]), shown
    for m in "ab":
        pattern = rf"test_{m}\.py:3: test_sleeps_{m} was running on p\d \(\d+\.\ds\); it did not finish"
        assert any(re.fullmatch(pattern, line) for line in shown), shown
    assert not any("KeyboardInterrupt" in line for line in lines), lines
    # the tests cut short kept their workers busy; a stopped run has no idle tail
    busy = next(line for line in lines if line.startswith("busy: "))
    assert re.fullmatch(r"busy: p\d [1-9]\d*%  p\d [1-9]\d*%", busy), busy
    assert not any(line.startswith("idle tail") for line in lines), lines


@pytest.mark.parametrize("mode", ["mt2", "mp2"])
def test_a_keyboard_interrupt_raised_by_a_test_points_at_the_test(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_k="""
        def test_ok(): pass
        def test_raises():
            raise KeyboardInterrupt
    """)
    result = run(pytester, *MODES[mode])
    assert result.ret == pytest.ExitCode.INTERRUPTED
    shown = banner(result.stdout.lines)
    assert re.fullmatch(r"!+ KeyboardInterrupt !+", shown[0]), shown
    # on a thread, pytest's own line at the raise; in a worker process, fleet's naming the test
    assert re.search(r"test_k\.py:\d+: (KeyboardInterrupt|test_raises was running on p0 .*it raised KeyboardInterrupt)$", shown[1]), shown
    assert not any("fleet" in line for line in shown), shown


# -- the end of the run ----------------------------------------------------------


def test_a_run_with_nothing_to_do_has_no_fleet_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\n")
    result = run(pytester, "--mt", "2", "-k", "nothing")
    assert outcomes(result) == {"deselected": 1}
    assert "fleet ---" not in result.stdout.str() and "workers:" not in result.stdout.str()


def test_quiet_quiet_keeps_only_what_differs_from_a_serial_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(monkeypatch): pass\ndef test_b(): pass\n")
    result = run(pytester, "--mt", "2", "--group-unit", "function", "-qq")
    text = result.stdout.str()
    assert "1 test ran alone in their process (1 using monkeypatch)" in text
    assert "workers:" not in text and "busy:" not in text and "slowest:" not in text


IDLE_TAIL = {"test_long": "import time\ndef test_long(): time.sleep(1.5)\n", "test_short": "def test_short(): pass\n"}


def test_a_large_idle_tail_offers_the_timeline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**IDLE_TAIL)
    result = run(pytester, "--mt", "2")
    assert outcomes(result) == {"passed": 2}
    idle = [line for line in result.stdout.lines if line.startswith("idle tail: ")]
    assert len(idle) == 1 and idle[0].endswith("before the end; --timeline run.html shows why)"), idle
    assert "timeline: " not in result.stdout.str()


def test_a_small_idle_tail_offers_nothing(pytester: pytest.Pytester) -> None:
    sleeps = "import time\ndef test_{0}(): time.sleep(0.3)\n"
    pytester.makepyfile(test_a=sleeps.format("a"), test_b=sleeps.format("b"))
    result = run(pytester, "--mt", "2")
    idle = [line for line in result.stdout.lines if line.startswith("idle tail: ")]
    assert len(idle) == 1 and idle[0].endswith("before the end)"), idle


def test_a_run_on_one_worker_has_no_idle_tail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\ndef test_b(): pass\n")
    result = run(pytester, "--mp", "2")  # one module: one worker process
    assert outcomes(result) == {"passed": 2}
    result.stdout.fnmatch_lines(["workers: 1 of 1 ran tests, wall time *", "busy: p0 *", "slowest: *"])
    assert "idle tail" not in result.stdout.str()


COMPUTES = "import time\n" + "".join(
    f"def test_{i}():\n    begin = time.thread_time()\n    while time.thread_time() - begin < 0.3: pass\n" for i in range(2)
)
WAITS = "import time\n" + "".join(f"def test_{i}(): time.sleep(1.2)\n" for i in range(2))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the line offers the other CPUs")
@pytest.mark.parametrize("suite, args, said", [
    (COMPUTES, ("--mt", "4"), True),
    (WAITS, ("--mt", "4"), False),
    (COMPUTES, ("--mp", "2"), False),  # processes: each has a GIL of its own
])
def test_tests_that_compute_on_threads_are_told_about_processes(pytester: pytest.Pytester, suite, args, said) -> None:
    pytester.makepyfile(**{f"test_{m}": suite for m in "abcd"})
    result = run(pytester, *args)
    assert outcomes(result) == {"passed": 8}
    cpu = [line for line in result.stdout.lines if line.startswith("cpu: ")]
    if said:
        assert len(cpu) == 1, result.stdout.str()
        assert re.fullmatch(
            r"cpu: the tests kept one CPU \d+% busy: threads share one GIL, so tests that compute run one at a time; "
            r"worker processes \(--mp\) would use the other CPUs", cpu[0]), cpu
    else:
        assert cpu == [], cpu


@pytest.mark.parametrize("name, how", [
    ("run.html", "(open it in a browser)"),
    ("run.json", "(a Chrome trace: open it in https://ui.perfetto.dev or chrome://tracing)"),
])
def test_the_end_of_the_run_says_where_the_timeline_is(pytester: pytest.Pytester, name: str, how: str) -> None:
    pytester.makepyfile(**IDLE_TAIL)
    result = run(pytester, "--mp", "2", "--timeline", name)
    assert outcomes(result) == {"passed": 2}
    assert result.stdout.lines[-2] == f"timeline: {pytester.path / name} {how}"
    assert (pytester.path / name).is_file()
    idle = [line for line in result.stdout.lines if line.startswith("idle tail: ")]
    assert idle[0].endswith("; the timeline shows why)"), idle
