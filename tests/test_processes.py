"""Worker processes: --mp N [--mt M], crashes, timeouts, interrupts, shared session fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import assert_like_serial, outcomes, run

# Records the pid of every process that runs a test, to check none outlives the run.
PIDS = r'''
import os, pytest

@pytest.fixture(autouse=True)
def _record_pid():
    with open(os.path.join(os.path.dirname(__file__), "pids.txt"), "a") as f:
        f.write(f"{os.getpid()} {os.environ.get('FLEET_WORKER')}\n")
    yield
'''


def worker_pids(path: Path) -> set[int]:
    pids = path / "pids.txt"
    return {int(line.split()[0]) for line in pids.read_text().splitlines()} if pids.exists() else set()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_no_worker_left(path: Path, controller: int | None = None) -> None:
    pids = worker_pids(path) - {controller}
    assert pids, "no test recorded its process"
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)]


def junit_cases(path: Path, qualified: bool = False) -> list[tuple[str, str]]:
    """(test name, outcome) for every testcase in the junit file."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        name = f"{case.get('classname')}.{case.get('name')}" if qualified else case.get("name")
        cases.append((name, kinds[0] if kinds else "passed"))
    return cases


MIXED = """
import pytest

def test_pass(): pass
def test_fail(): assert 0
@pytest.mark.skip
def test_skip(): pass
@pytest.mark.xfail
def test_xfail(): assert 0
@pytest.fixture
def broken(): raise RuntimeError("no")
def test_error(broken): pass
@pytest.mark.parametrize("i", range(6))
def test_many(i): pass
"""


@pytest.mark.parametrize("mode", [["--mp", "2"], ["--mp", "2", "--mt", "2"], ["-n", "2", "-p", "no:xdist"]])
def test_outcomes_and_exit_code_as_serial(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makepyfile(test_a=MIXED, test_b=MIXED)
    serial = run(pytester)
    result = run(pytester, *mode, "--junitxml=junit.xml")
    assert outcomes(result) == outcomes(serial) == {
        "passed": 14, "failed": 2, "skipped": 2, "xfailed": 2, "error": 2
    }
    assert result.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
    cases = junit_cases(pytester.path / "junit.xml", qualified=True)
    assert len(cases) == len({name for name, _ in cases}) == 22


SESSION_FIXTURES = r'''
import json, os, threading, pickle, pytest

LOG = os.path.join(os.path.dirname(__file__), "fixtures.jsonl")

def log(**event):
    event["pid"] = os.getpid()
    with open(LOG, "a") as f:
        f.write(json.dumps(event) + "\n")

@pytest.fixture(scope="session")
def shared():
    log(kind="setup", name="shared")
    yield {"token": "abc"}
    log(kind="teardown", name="shared")

@pytest.fixture(scope="session")
def unpicklable():
    log(kind="setup", name="unpicklable")
    yield threading.Lock()
    log(kind="teardown", name="unpicklable")

@pytest.fixture(scope="session")
def per_worker(worker_id):
    log(kind="setup", name="per_worker", worker=worker_id)
    yield worker_id
    log(kind="teardown", name="per_worker")

@pytest.fixture(scope="module")
def module_fixture(request):
    log(kind="setup", name="module", module=request.module.__name__)
    yield
'''


def fixture_events(path: Path) -> list[dict]:
    import json

    log = path / "fixtures.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_session_fixture_once_per_run_shared_by_every_process(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SESSION_FIXTURES)
    for m in range(4):
        pytester.makepyfile(**{f"test_m{m}": """
            import os
            def test_one(shared, module_fixture):
                assert shared == {"token": "abc"}
                with open(os.path.join(os.path.dirname(__file__), "ran.txt"), "a") as f:
                    f.write(f"{os.getpid()}\\n")
            def test_two(shared, module_fixture):
                assert shared["token"] == "abc"
        """})
    result = run(pytester, "--mp", "2", "--mt", "2")
    assert outcomes(result) == {"passed": 8}
    events = fixture_events(pytester.path)
    shared = [e for e in events if e["name"] == "shared"]
    assert [e["kind"] for e in shared] == ["setup", "teardown"]
    assert shared[0]["pid"] == shared[1]["pid"]
    ran_in = set((pytester.path / "ran.txt").read_text().split())
    assert len(ran_in) == 2  # both processes used the one value
    modules = [e["module"] for e in events if e["name"] == "module"]
    assert sorted(modules) == ["test_m0", "test_m1", "test_m2", "test_m3"]
    assert "more than once" not in result.stdout.str()


def test_fixtures_that_cannot_be_handed_over_run_per_process_and_say_why(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(SESSION_FIXTURES)
    for m in range(2):
        pytester.makepyfile(**{f"test_m{m}": """
            def test_lock(unpicklable): assert unpicklable.acquire(blocking=False) in (True, False)
            def test_worker(per_worker, worker_id): assert per_worker == worker_id
        """})
    result = run(pytester, "--mp", "2")
    assert outcomes(result) == {"passed": 4}
    events = fixture_events(pytester.path)
    lock = [e for e in events if e["name"] == "unpicklable"]
    assert sorted(e["kind"] for e in lock) == ["setup", "setup", "teardown", "teardown"]
    assert len({e["pid"] for e in lock}) == 2
    workers = {e["worker"] for e in events if e["name"] == "per_worker" and e["kind"] == "setup"}
    assert workers == {"p0", "p1"}
    result.stdout.fnmatch_lines([
        "*fixtures set up more than once per scope:",
        "*per_worker (session): once per worker process: it depends on worker_id",
        "*unpicklable (session): once per worker process: its value cannot be pickled (TypeError*",
    ])


CRASHES = """
import ctypes, os, signal

def test_before(): pass
def test_sigkill(): os.kill(os.getpid(), signal.SIGKILL)
def test_middle(): pass
def test_exit(): os._exit(3)
def test_segfault(): ctypes.string_at(0)
def test_after(): pass
"""


@pytest.mark.parametrize("mode", [["--mp", "2"], ["--mp", "2", "--mt", "3", "--group-unit", "function"]])
def test_crashed_workers_fail_their_test_and_the_run_goes_on(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    pytester.makeconftest(PIDS)
    pytester.makepyfile(test_crash=CRASHES, test_other="def test_o1(): pass\ndef test_o2(): pass\n")
    result = run(pytester, *mode, "-p", "no:faulthandler", "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(result) == {"passed": 5, "failed": 3}
    result.stdout.fnmatch_lines_random([
        "worker p? crashed: signal 9 (SIGKILL) while running test_crash.py::test_sigkill",
        "worker p? crashed: exit code 3 while running test_crash.py::test_exit",
        "worker p? crashed: signal 11 (SIGSEGV) while running test_crash.py::test_segfault",
    ])
    cases = junit_cases(pytester.path / "junit.xml")
    assert sorted(name for name, _ in cases) == sorted(
        ["test_before", "test_sigkill", "test_middle", "test_exit", "test_segfault", "test_after",
         "test_o1", "test_o2"]
    )
    assert {name for name, kind in cases if kind == "failure"} == {"test_sigkill", "test_exit", "test_segfault"}
    assert_no_worker_left(pytester.path)


def test_max_worker_restart_bounds_replacements_and_no_test_is_lost(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash="""
        import os
        def test_dies(): os._exit(1)
        def test_a(): pass
        def test_b(): pass
    """)
    result = run(pytester, "--mp", "1", "--max-worker-restart", "0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(result) == {"failed": 3}
    result.stdout.fnmatch_lines([
        "*_ test_dies _*",
        "worker p0 crashed: exit code 1 while running test_crash.py::test_dies",
        "*_ test_a _*",
        "not run: every worker process crashed and --max-worker-restart (0) allows no more",
        "*_ test_b _*",
        "not run: every worker process crashed*",
    ])


TIMEOUTS = """
import os, threading, time, pytest

def test_quick(): pass

@pytest.mark.test_timeout(0.5)
def test_hangs():
    if os.environ.get("FLEET_WORKER") or threading.current_thread() is threading.main_thread():
        time.sleep(60)  # a worker process is killed; the main thread gets SIGALRM
    while True:  # a thread fails at its next Python instruction
        pass

def test_slow_but_allowed():
    time.sleep(0.3)
"""


@pytest.mark.parametrize("mode", [["--mp", "2"], ["--mp", "1", "--mt", "2"], ["--mt", "2"], []])
def test_test_timeout_fails_the_test_and_the_run_goes_on(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makepyfile(test_t=TIMEOUTS)
    pytester.makeini("[pytest]\ntest_timeout = 5\n")
    started = time.monotonic()
    result = run(pytester, *mode, timeout=60)
    assert time.monotonic() - started < 30
    assert outcomes(result) == {"passed": 2, "failed": 1}
    result.stdout.fnmatch_lines(["*_ test_hangs _*", "Timeout: the test ran longer than 0.5 s (--test-timeout)*"])


def test_test_timeout_option_and_a_clean_error_for_a_bad_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_t="import time\ndef test_sleeps(): time.sleep(5)\n")
    result = run(pytester, "--mp", "1", "--test-timeout", "0.5")
    assert outcomes(result) == {"failed": 1}
    result.stdout.fnmatch_lines(["*worker p0 was killed and replaced*", "*time.sleep(5)*"])
    pytester.makeini("[pytest]\ntest_timeout = soon\n")
    bad = run(pytester, "--mp", "1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: fleet: test_timeout = 'soon' in the ini file is not a number of seconds"])
    assert "Traceback" not in bad.stderr.str()


def test_output_travels_with_reports_and_s_prefixes_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_out="""
        import os, sys
        def test_prints():
            print("to stdout from", os.environ["FLEET_WORKER"])
            sys.stderr.write("to stderr\\n")
            assert 0
        def test_quiet(): print("live line")
    """)
    result = run(pytester, "--mp", "2", "--group-unit", "function")
    result.stdout.fnmatch_lines([
        "*Captured stdout call*", "to stdout from p?", "*Captured stderr call*", "to stderr",
    ])
    assert "live line" not in result.stdout.str()
    live = run(pytester, "--mp", "2", "--mt", "2", "--group-unit", "function", "-s")
    # As in a serial run with -s, a line may start after the progress dots on screen.
    live.stdout.fnmatch_lines_random(["*[[]p?t?[]] live line", "*[[]p?t?[]] to stdout from p?"])


def test_worker_identity_fixtures_and_environment(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ids="""
        import os
        import pytest
        @pytest.mark.parametrize("i", range(8))
        def test_id(i, worker_id, testrun_uid):
            with open(os.path.join(os.path.dirname(__file__), "ids.txt"), "a") as f:
                f.write(" ".join([worker_id, os.environ["FLEET_WORKER"],
                                  os.environ["FLEET_WORKER_COUNT"], os.environ["FLEET_TESTRUNUID"],
                                  testrun_uid]) + "\\n")
    """)
    result = run(pytester, "--mp", "2", "--mt", "2", "--group-unit", "function")
    assert outcomes(result) == {"passed": 8}
    rows = [line.split() for line in (pytester.path / "ids.txt").read_text().splitlines()]
    for worker, process, count, env_uid, uid in rows:
        assert worker in {"p0t0", "p0t1", "p1t0", "p1t1"} and worker.startswith(process)
        assert count == "2" and env_uid == uid
    assert len({row[4] for row in rows}) == 1


def test_maxfail_stops_every_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="""
        import time, pytest
        @pytest.mark.parametrize("i", range(40))
        def test_t(i):
            time.sleep(0.05)
            assert i != 3
    """)
    result = run(pytester, "--mp", "2", "--group-unit", "function", "-x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    counts = outcomes(result)
    assert counts["failed"] == 1 and counts.get("passed", 0) < 20
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_groups_keep_their_order_across_processes(pytester: pytest.Pytester, probe) -> None:
    for m in range(3):
        pytester.makepyfile(**{f"test_g{m}": """
            import time, pytest
            pytestmark = pytest.mark.group("ordered")
            @pytest.mark.parametrize("i", range(5))
            def test_step(i): time.sleep(0.01)
        """})
    pytester.makepyfile(test_free="""
        import pytest
        @pytest.mark.parametrize("i", range(10))
        def test_free(i): pass
    """)
    result = run(pytester, "--mp", "2", "--group-unit", "function")
    assert outcomes(result) == {"passed": 25}
    grouped = [e for e in probe() if "test_g" in e["test"]]
    starts = [e["test"] for e in grouped if e["kind"] == "start"]
    assert starts == sorted(starts, key=lambda t: (t.split("::")[0], int(t.split("[")[1][:-1])))
    running = 0
    for event in grouped:  # one at a time
        running += 1 if event["kind"] == "start" else -1
        assert running <= 1


def test_nondeterministic_parametrize_ids_run_under_fork(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ids="""
        import time, pytest
        @pytest.mark.parametrize("v", list({f"value-{i}-{time.time_ns()}" for i in range(6)}))
        def test_v(v): assert v.startswith("value-")
    """)
    result = run(pytester, "--mp", "2", "--group-unit", "function")
    assert outcomes(result) == {"passed": 6}


def test_warnings_from_workers_reach_the_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_w="""
        import warnings
        def test_warns(): warnings.warn(UserWarning("careful in a worker"))
    """)
    result = run(pytester, "--mp", "2")
    assert outcomes(result) == {"passed": 1, "warning": 1}
    result.stdout.fnmatch_lines(["*UserWarning: careful in a worker*"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_controller_leaves_no_worker(pytester: pytest.Pytester, sig: int) -> None:
    pytester.makeconftest(PIDS)
    pytester.makepyfile(test_slow="""
        import time, pytest
        @pytest.mark.parametrize("i", range(20))
        def test_s(i): time.sleep(0.5)
    """)
    env = dict(os.environ, PYTEST_ADDOPTS="-p no:asyncio")
    controller = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mp", "2", "--group-unit", "function"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    deadline = time.monotonic() + 30
    while len(worker_pids(pytester.path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    controller.send_signal(sig)
    out, _ = controller.communicate(timeout=60)
    assert controller.returncode == pytest.ExitCode.INTERRUPTED, out
    assert ("KeyboardInterrupt" if sig == signal.SIGINT else "Terminated (SIGTERM)") in out
    assert_no_worker_left(pytester.path)


def test_killing_the_controller_kills_its_workers(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PIDS)
    pytester.makepyfile(test_slow="""
        import time
        def test_a(): time.sleep(30)
        def test_b(): time.sleep(30)
    """)
    env = dict(os.environ, PYTEST_ADDOPTS="-p no:asyncio")
    controller = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mp", "2", "--group-unit", "function"],
        cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    deadline = time.monotonic() + 30
    while len(worker_pids(pytester.path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    controller.kill()
    controller.wait(timeout=10)
    assert_no_worker_left(pytester.path)


def test_usage_errors_are_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass\n")
    for args, message in [
        (["--mp=zero"], "ERROR: fleet: --mp takes a positive integer or 'auto', not 'zero'"),
        (["--mp", "2", "--max-worker-restart", "x"], "ERROR: fleet: --max-worker-restart takes a whole number, not 'x'"),
        (["-p", "no:xdist", "-n", "many"], "ERROR: fleet: -n takes a positive integer or 'auto', not 'many'"),
    ]:
        result = run(pytester, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines([message])
        assert "Traceback" not in result.stderr.str()


def test_spawned_workers_collect_for_themselves_and_run_like_forked_ones(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_START_METHOD", "spawn")
    pytester.makeconftest(SESSION_FIXTURES)
    pytester.makepyfile(test_a=MIXED, test_b="""
        def test_shared(shared, module_fixture): assert shared == {"token": "abc"}
        def test_lock(unpicklable): pass
    """, test_c="def test_shared(shared): assert shared['token'] == 'abc'\n")
    result = run(pytester, "--mp", "2", "--mt", "2")
    assert outcomes(result) == {"passed": 10, "failed": 1, "skipped": 1, "xfailed": 1, "error": 1}
    assert result.stdout.str().count("test session starts") == 1  # workers print nothing
    shared = [e for e in fixture_events(pytester.path) if e["name"] == "shared"]
    assert [e["kind"] for e in shared] == ["setup", "teardown"]


def test_a_spawned_worker_that_collects_differently_is_one_clear_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_START_METHOD", "spawn")
    pytester.makepyfile(test_ids="""
        import time, pytest
        @pytest.mark.parametrize("v", [time.time_ns()])
        def test_v(v): pass
    """)
    result = run(pytester, "--mp", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([
        "*fleet: worker p0 collected a different suite: test 1 is test_ids.py::test_v[[]*[]] there "
        "but test_ids.py::test_v[[]*[]] here (parametrize ids must not change between runs)*"
    ])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_failed_report_lost_on_the_way_fails_the_run(pytester: pytest.Pytester) -> None:
    """A plugin that turns a worker's failed report into a pass while it
    travels (a broken deserializer) is caught by the count of failed reports:
    never green when the workers reported red."""
    pytester.makeconftest(
        """
        def pytest_report_from_serializable(config, data):
            if data.get("$report_type") == "TestReport" and data.get("outcome") == "failed":
                from _pytest.reports import TestReport
                report = TestReport._from_json(data)
                report.outcome, report.longrepr = "passed", None
                return report
        """
    )
    pytester.makepyfile("def test_fails(): assert 0\ndef test_passes(): pass\n")
    result = run(pytester, "--mp", "2")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*FAILED REPORTS LOST: worker processes sent 1 failed reports and the controller received 0*",
    ])


def test_a_worker_counts_every_object_as_a_serial_run_does(pytester: pytest.Pytester) -> None:
    # markupsafe's leak test: gc.get_objects() in a forked worker must not miss
    # what the controller froze before forking
    pytester.makepyfile(test_leak="""
        import gc

        def test_counts_objects():
            gc.collect()
            assert len(gc.get_objects()) > 5000

        def test_stable_count():
            counts = set()
            gc.collect()
            for _ in range(20):
                for _ in range(1000):
                    "<foo>".replace("<", "&lt;")
                counts.add(len(gc.get_objects()))
            assert len(counts) < 3, counts
        """)
    result = assert_like_serial(pytester, ["--mp", "2"])
    assert outcomes(result) == {"passed": 2}
