"""Thread-unsafe tests: placed alone by construction, caught in the act, learned.

Real tests change process-wide state (module attributes, os.environ,
sys.stdout, logging); beside other tests on threads, that makes innocent
tests fail. fleet's promise is serial's outcomes anyway.
"""

from __future__ import annotations

import pytest

from conftest import PROBE, assert_like_serial, outcomes, read_events, run

PATCHING = """
import os, time, logging

def test_patches_a_module(monkeypatch):
    monkeypatch.setattr(os, "sep", "!")
    time.sleep(0.3)

def test_patches_the_environment(monkeypatch):
    monkeypatch.setenv("FLEET_PATCHED", "1")
    time.sleep(0.3)
"""

READERS = """
import os, time

def test_reads_sep():
    time.sleep(0.1)
    assert os.sep == "/"

def test_reads_the_environment():
    time.sleep(0.1)
    assert "FLEET_PATCHED" not in os.environ
"""

DOCTESTS = '''
def double(x):
    """
    >>> double(2)
    4
    """
    return 2 * x
'''


@pytest.mark.parametrize("mode", [["--mt", "4"], ["--mp", "2", "--mt", "2"]], ids=["mt4", "mp2-mt2"])
def test_patching_fixtures_and_doctests_run_alone(pytester, probe, mode) -> None:
    pytester.makepyfile(test_patching=PATCHING, test_readers=READERS, mod_doc=DOCTESTS)
    result = run(pytester, *mode, "--group-unit", "function", "--doctest-modules")
    assert outcomes(result) == {"passed": 5}
    assert result.ret == 0
    alone = [e for e in probe() if e["kind"] == "start" and "patches" in e["test"]]
    assert len(alone) == 2 and all(e["running"] == 1 for e in alone), alone
    result.stdout.fnmatch_lines(["3 tests ran alone in their process (2 using monkeypatch, 1 doctest)*"])


@pytest.mark.parametrize("mode", [["--mt", "4"], ["--mp", "2", "--mt", "2"]], ids=["mt4", "mp2-mt2"])
def test_tests_marked_thread_unsafe_run_alone(pytester, probe, mode) -> None:
    # pytest-run-parallel's mark, as projects such as markupsafe carry it
    pytester.makeini("[pytest]\nmarkers =\n    thread_unsafe: not safe beside other threads\n")
    pytester.makepyfile(test_marked="""
        import time, pytest

        @pytest.mark.thread_unsafe(reason="counts gc.get_objects()")
        def test_counts_objects():
            time.sleep(0.3)

        def test_a():
            time.sleep(0.2)

        def test_b():
            time.sleep(0.2)
        """)
    result = run(pytester, *mode, "--group-unit", "function", "--strict-markers")
    assert outcomes(result) == {"passed": 3}
    alone = [e for e in probe() if e["kind"] == "start" and "counts_objects" in e["test"]]
    assert len(alone) == 1 and alone[0]["running"] == 1, alone
    result.stdout.fnmatch_lines(["1 test ran alone in their process (1 marked thread_unsafe)"])


def test_a_fixture_declared_thread_safe_runs_beside_others(pytester, probe) -> None:
    pytester.makeini("[pytest]\nthread_safe_fixtures = monkeypatch\n")
    pytester.makepyfile(test_safe="""
        import time

        def test_one(monkeypatch):
            time.sleep(0.4)

        def test_two(monkeypatch):
            time.sleep(0.4)
        """)
    result = run(pytester, "--mt", "2", "--group-unit", "function")
    assert outcomes(result) == {"passed": 2}
    assert max(e["running"] for e in probe() if e["kind"] == "start") == 2
    assert "ran alone in their process" not in result.stdout.str()


CULPRITS = """
import contextlib, io, logging, os, time

def test_a_sets_the_environment():
    os.environ["FLEET_DEMO"] = "1"
    time.sleep(0.6)
    del os.environ["FLEET_DEMO"]

def test_b_swaps_stdout():
    with contextlib.redirect_stdout(io.StringIO()):
        time.sleep(0.6)

def test_c_resets_logging():
    logging.basicConfig(force=True)
    time.sleep(0.6)
"""

VICTIMS = """
import logging, os, time

def test_expects_a_clean_environment():
    time.sleep(0.2)
    assert "FLEET_DEMO" not in os.environ

def test_prints(capsys):
    time.sleep(0.2)
    print("hello")
    assert capsys.readouterr().out == "hello\\n"

def test_innocent_failure():
    time.sleep(0.2)
    assert False, "fails alone too"
"""


@pytest.mark.parametrize("mode", [["--mt", "6"], ["--mp", "1", "--mt", "6"]], ids=["mt6", "mp1-mt6"])
def test_failures_beside_a_caught_test_run_again_alone(pytester, mode) -> None:
    pytester.makepyfile(test_culprits=CULPRITS, test_victims=VICTIMS)
    serial = run(pytester)
    assert outcomes(serial) == {"passed": 5, "failed": 1}
    result = run(pytester, *mode, "--group-unit", "function")
    assert outcomes(result) == {"passed": 5, "failed": 1}
    assert result.ret == serial.ret == 1
    text = result.stdout.str()
    assert "test_expects_a_clean_environment failed beside" in text
    assert "test_prints failed beside" in text
    assert "run again alone, it passed" in text
    assert "test_innocent_failure failed beside" in text and "run again alone, it failed again" in text
    result.stdout.fnmatch_lines([
        "caught changing process-wide state beside other tests (no cache to remember them in):",
        "*test_a_sets_the_environment: set the environment variable FLEET_DEMO",
        "*test_b_swaps_stdout: replaced sys.stdout",
        "*test_c_resets_logging: removed a root logger handler",
    ])


@pytest.mark.parametrize("mode", [["--mt", "2"], ["--mp", "1", "--mt", "2"]], ids=["mt2", "mp1-mt2"])
def test_a_test_that_replaced_stdout_and_failed_beside_a_printing_test_runs_again_alone(pytester, mode) -> None:
    # click's CliRunner: a test replaces sys.stdout and checks what was
    # printed, while a test beside it prints into the same stream
    pytester.makepyfile(test_streams="""
        import contextlib, io, time

        def test_checks_what_it_printed():
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                time.sleep(0.5)
                print("mine")
            assert out.getvalue() == "mine\\n"

        def test_prints_meanwhile():
            for _ in range(10):
                print("theirs")
                time.sleep(0.05)
        """)
    assert outcomes(run(pytester)) == {"passed": 2}
    result = run(pytester, *mode, "--group-unit", "function", "-p", "no:randomly")
    assert outcomes(result) == {"passed": 2}, result.stdout.str()
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*test_checks_what_it_printed failed beside *test_prints_meanwhile (which ran beside it while it had "
        "the standard streams replaced); run again alone, it passed",
    ])


@pytest.mark.parametrize("mode", [["--mt", "4"], ["--mp", "1", "--mt", "4"]], ids=["mt4", "mp1-mt4"])
def test_a_frozen_clock_and_a_blocked_import_are_caught(pytester, mode) -> None:
    # freezegun replaces time.time for every thread; a test hiding an optional
    # dependency sets its sys.modules entry to None, and a test beside it skips
    pytester.makepyfile(optional_dep="VALUE = 1")
    pytester.makepyfile(test_culprits="""
        import sys, time
        import optional_dep

        def test_freezes_the_clock():
            real, time.time = time.time, lambda: 0.0
            try:
                time.sleep(0.4)
            finally:
                time.time = real

        def test_hides_the_dependency():
            sys.modules["optional_dep"] = None
            try:
                time.sleep(0.4)
            finally:
                sys.modules["optional_dep"] = optional_dep
        """)
    pytester.makepyfile(test_victims="""
        import time, pytest

        def test_reads_the_clock():
            time.sleep(0.2)
            assert time.time() > 1e9

        def test_uses_the_dependency():
            time.sleep(0.2)
            pytest.importorskip("optional_dep")
        """)
    result = run(pytester, *mode, "--group-unit", "function", "-p", "no:randomly")
    assert outcomes(result) == {"passed": 4}
    result.stdout.fnmatch_lines_random([
        "test_victims.py::test_reads_the_clock failed beside *replaced time.time*; run again alone, it passed",
        "test_victims.py::test_uses_the_dependency skipped beside *blocked an import*; run again alone, it passed",
    ])


@pytest.mark.parametrize("mode", [["--mt", "2"], ["--mp", "1", "--mt", "2"]], ids=["mt2", "mp1-mt2"])
def test_overlapping_stream_swaps_take_turns(pytester, mode) -> None:
    # click's CliRunner.isolation(): save the streams, replace them, then save
    # and patch a module attribute; put everything back on the way out
    pytester.makepyfile(shared="def greet():\n    return 'real'\n")
    pytester.makepyfile(isolation="""
        import contextlib, io, sys
        import shared

        @contextlib.contextmanager
        def isolated(name):
            old_stdin, old_stdout = sys.stdin, sys.stdout
            sys.stdin, sys.stdout = io.StringIO(), io.StringIO()
            old_greet, shared.greet = shared.greet, (lambda: name)
            try:
                yield
            finally:
                shared.greet = old_greet
                sys.stdin, sys.stdout = old_stdin, old_stdout
        """)
    pytester.makepyfile(test_a="""
        import time
        from isolation import isolated

        def test_invoke_a():
            with isolated("a"):
                time.sleep(0.3)
        """)
    pytester.makepyfile(test_b="""
        import time
        import shared
        from isolation import isolated

        def test_invoke_b():
            time.sleep(0.1)
            with isolated("b"):
                time.sleep(0.3)

        def test_after():
            assert shared.greet() == "real"

        def test_after_print(capsys):
            print("hello")
            assert capsys.readouterr().out.strip() == "hello"
        """)
    result = assert_like_serial(pytester, [*mode, "-p", "no:randomly"])
    assert outcomes(result) == {"passed": 4}


def test_a_test_run_again_alone_gives_the_streams_back(pytester) -> None:
    # two failures beside a caught test run again alone, each replacing
    # sys.stdout: the second must not wait for a turn the first never gave back
    pytester.makepyfile(shared="busy = 0\n")
    pytester.makepyfile(test_swap="""
        import io, sys, time
        import shared

        def test_swap():
            shared.busy += 1
            old, sys.stdout = sys.stdout, io.StringIO()
            time.sleep(0.3)
            sys.stdout = old
            shared.busy -= 1
        """)
    for name in ("one", "two"):
        pytester.makepyfile(**{f"test_{name}": """
            import contextlib, io, time
            import shared

            def test_it():
                time.sleep(0.05)
                seen = shared.busy
                with contextlib.redirect_stdout(io.StringIO()):
                    print("x")
                assert seen == 0
            """})
    result = run(pytester, "--mt", "3", "-p", "no:randomly", timeout=30)
    assert outcomes(result) == {"passed": 3}
    assert result.stdout.str().count("run again alone, it passed") == 2


@pytest.mark.parametrize("mode", [["--mt", "2"], ["--mp", "1", "--mt", "2"]], ids=["mt2", "mp1-mt2"])
def test_a_failure_on_an_import_blocked_for_a_moment_runs_again_alone(pytester, mode) -> None:
    # python-dateutil: a test blocks an import for a few ms at a time, which no
    # look between tests sees; the test beside it fails importing it
    pytester.makepyfile(optional_dep="VALUE = 1")
    pytester.makepyfile(test_blocks="""
        import sys, time
        import optional_dep

        def test_blocks_briefly():
            for _ in range(40):
                sys.modules["optional_dep"] = None
                time.sleep(0.005)
                sys.modules["optional_dep"] = optional_dep
                time.sleep(0.002)
        """)
    pytester.makepyfile(test_uses="""
        import importlib, sys, time

        def test_loads_repeatedly():
            for _ in range(300):
                if sys.modules.get("optional_dep") is not None:
                    del sys.modules["optional_dep"]
                importlib.import_module("optional_dep")
                time.sleep(0.001)
        """)
    result = assert_like_serial(pytester, [*mode, "--group-unit", "function", "-p", "no:randomly"])
    assert outcomes(result) == {"passed": 2}
    result.stdout.fnmatch_lines(["*test_loads_repeatedly failed beside *blocked an import*; run again alone, it passed"])


def test_strict_threads_reports_the_parallel_outcome(pytester) -> None:
    pytester.makepyfile(test_culprits=CULPRITS, test_victims=VICTIMS)
    result = run(pytester, "--mt", "6", "--group-unit", "function", "--strict-threads")
    assert result.ret == 1
    assert outcomes(result)["failed"] >= 2
    assert "(--strict-threads)" in result.stdout.str()
    assert "run again alone" not in result.stdout.str()


def test_culprits_are_remembered_and_placed_alone_next_time(pytester) -> None:
    pytester.makeconftest(PROBE)
    pytester.makepyfile(test_culprits=CULPRITS, test_victims=VICTIMS)
    first = pytester.runpytest_subprocess("--mt", "6", "--group-unit", "function")
    assert "from the next run on, each runs alone" in first.stdout.str()
    (pytester.path / "events.jsonl").unlink()
    second = pytester.runpytest_subprocess("--mt", "6", "--group-unit", "function")
    assert outcomes(second) == {"passed": 5, "failed": 1}
    second.stdout.fnmatch_lines(["3 tests ran alone in their process (3 caught in an earlier run)"])
    assert "failed beside" not in second.stdout.str()
    starts = [e for e in read_events(pytester.path / "events.jsonl") if e["kind"] == "start"]
    assert all(e["running"] == 1 for e in starts if "test_culprits" in e["test"]), starts
