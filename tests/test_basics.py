"""fleet's switch: what changes with --mt, and what must not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import outcomes, run

MIXED = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("set-up fails")

def test_pass(): pass
def test_fail(): assert 1 == 2
def test_error(broken): pass
def test_skip(): pytest.skip("not today")
@pytest.mark.xfail(reason="known")
def test_xfail(): assert False
@pytest.mark.xfail(reason="known")
def test_xpass(): pass
@pytest.mark.parametrize("n", range(6))
def test_param(n): assert n != 3
"""


@pytest.mark.parametrize("unit", ["module", "function"])
def test_outcomes_and_exit_code_equal_serial(pytester: pytest.Pytester, unit: str) -> None:
    pytester.makepyfile(test_mixed=MIXED, test_more=MIXED)
    serial = run(pytester)
    threaded = run(pytester, "--mt", "4", "--group-unit", unit)
    assert outcomes(threaded) == outcomes(serial) == {
        "passed": 12, "failed": 4, "error": 2, "skipped": 2, "xfailed": 2, "xpassed": 2,
    }
    assert threaded.ret == serial.ret == pytest.ExitCode.TESTS_FAILED


def test_all_passing_exits_zero(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass")
    result = run(pytester, "--mt", "2")
    assert result.ret == 0
    assert outcomes(result) == {"passed": 2}


def test_no_tests_exits_five(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def helper(): pass")
    assert run(pytester, "--mt", "4").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_collection_error_interrupts_like_serial(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_a(): pass", test_bad="import nonexistent_module_xyz")
    result = run(pytester, "--mt", "2")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*1 error during collection*"])


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_thread_count_is_one_line_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = run(pytester, f"--mt={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [f"ERROR: fleet: --mt takes a positive integer or 'auto', not '{value}'"]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_bad_group_unit_is_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = run(pytester, "--mt", "2", "--group-unit", "package")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "fleet: --group-unit takes module, class or function, not 'package'" in result.stderr.str()


def test_mt_followed_by_a_path_runs_that_path_with_auto(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_elsewhere="def test_not_me(): pass")
    sub = pytester.mkdir("suite")
    (sub / "test_here.py").write_text("def test_me(worker_id): assert worker_id.startswith('t')")
    result = run(pytester, "--mt", "suite", "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_here.py::test_me*PASSED*"])
    assert "test_not_me" not in result.stdout.str()


def test_without_mt_or_with_mt_1_pytest_runs_serially(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        def test_where(worker_id):
            assert worker_id == "master"
            assert threading.current_thread() is threading.main_thread()
        """
    )
    for args in ([], ["--mt", "1"]):
        result = run(pytester, *args)
        assert result.ret == 0, result.stdout.str()


def test_pdb_with_threads_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = run(pytester, "--mt", "2", "--pdb")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "fleet: --pdb needs one test at a time" in result.stderr.str()


def test_worker_id_and_testrun_uid(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, time
        SEEN = {}
        @pytest.mark.parametrize("i", range(8))
        def test_ids(i, worker_id, testrun_uid):
            time.sleep(0.05)
            print(f"ID {worker_id} {testrun_uid}")
        """
    )
    result = run(pytester, "--mt", "4", "--group-unit", "function", "-rP")
    assert result.ret == 0
    lines = [l.split() for l in result.stdout.lines if l.startswith("ID ")]
    assert len(lines) == 8
    assert {w for _, w, _ in lines} == {"t0", "t1", "t2", "t3"}
    assert len({uid for _, _, uid in lines}) == 1


def test_fleet_command_is_pytest(pytester: pytest.Pytester) -> None:
    import shutil
    import sys
    from pathlib import Path

    pytester.makepyfile("def test_a(): pass\ndef test_b(): assert 0")
    fleet = shutil.which("fleet", path=str(Path(sys.executable).parent))
    assert fleet, "the fleet console script is installed beside python"
    for command in ([fleet], [sys.executable, "-m", "fleet"]):
        result = pytester.run(*command, "--mt", "1", "-p", "no:cacheprovider", "-k", "test_b")
        assert result.ret == 1
        result.stdout.fnmatch_lines(["*1 failed, 1 deselected*"])
        assert "PytestAssertRewriteWarning" not in result.stdout.str()


def test_mt_with_xdist_n_is_refused(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile("def test_a(): pass")
    result = run(pytester, "--mt", "2", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [l for l in result.stderr.lines if l.strip()]
    assert lines == ["ERROR: fleet: --mt and pytest-xdist's -n both parallelise the run; use one of them"]
    # With xdist installed but not used, fleet runs and its worker_id wins.
    pytester.makepyfile("def test_a(worker_id): assert worker_id == 't0'")
    assert run(pytester, "--mt", "2").ret == 0


@pytest.mark.parametrize("order", [["fleet.plugin", "xdist.plugin"], ["xdist.plugin", "fleet.plugin"]])
def test_xdist_named_with_autoloading_off_keeps_its_options(pytester: pytest.Pytester, order: list[str]) -> None:
    """``-p fleet.plugin -p xdist.plugin``: -n is xdist's, in either order."""
    pytest.importorskip("xdist")
    pytester.makepyfile("def test_a(worker_id): assert worker_id.startswith('gw')")
    plugins = [arg for name in order for arg in ("-p", name)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-p", "no:cacheprovider", "-n", "2", "-q"],
        cwd=pytester.path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
