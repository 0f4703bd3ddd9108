"""``--ray``: one run across the nodes of a real Ray cluster.

The module starts one local cluster (a head and a second node on this
machine, each with its own CPUs, token authentication on) and runs suites
across it: outcomes as in a serial run, each test once, a session fixture
made once for every node and torn down after the last test, tests on both
nodes, a node joining mid-run getting work, and a node killed mid-run
failing only the tests that ran there. Skipped where Ray is not installed
(``pip install "pytest-fleet[ray]"``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import junit_outcomes, on_terminal, outcomes, ray_authentication, run, run_with_junit

pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
# Ray marks a node dead once it missed this many health checks.
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """A Ray head and more nodes on this machine, started with ``ray start``."""

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, **FAST_HEALTH_CHECKS)
        self.node_ports: list[int] = []

    def _ray(self, *args: str) -> None:
        subprocess.run([RAY, *args, "--disable-usage-stats"], env=self.env, check=True, capture_output=True, timeout=120)

    def start_head(self, cpus: int) -> None:
        self._ray("start", "--head", f"--port={self.port}", f"--num-cpus={cpus}", "--include-dashboard=false")

    def add_node(self, cpus: int) -> int:
        """Another node (its raylet known by its port); returns that port."""
        port = _free_port()
        self._ray("start", f"--address={self.address}", f"--num-cpus={cpus}", f"--node-manager-port={port}")
        self.node_ports.append(port)
        return port

    def raylet_of(self, port: int) -> tuple[int, str]:
        """The pid and node id of the raylet listening on ``port``."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"/raylet") and f"--node_manager_port={port}".encode() in argv:
                node = next(a for a in argv if a.startswith(b"--node_id=")).split(b"=", 1)[1].decode()
                return int(entry.name), node
        raise LookupError(f"no raylet on port {port}")

    def stop(self) -> None:
        subprocess.run([RAY, "stop", "--force"], env=self.env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A head with 2 CPUs and a second node with 2, for the whole module."""
    with ray_authentication():
        local = LocalCluster(tmp_path_factory.mktemp("ray"))
        try:
            local.start_head(cpus=2)
            local.add_node(cpus=2)
            yield local
        finally:
            local.stop()


# A suite with a session fixture that records where and when it was made
# and torn down, and tests that record which process ran them.
SUITE = '''
import json, os, time
import pytest

EVENTS = {events!r}

def record(**event):
    event["pid"] = os.getpid()
    event["node"] = os.environ.get("FLEET_NODE")
    event["t"] = time.time()
    with open(EVENTS, "a") as f:
        f.write(json.dumps(event) + "\\n")

@pytest.fixture(scope="session")
def shared():
    record(kind="made")
    yield {{"token": 42}}
    record(kind="torn down")

def pytest_collection_finish(session):
    record(kind="collected")

@pytest.fixture(autouse=True)
def _probe(request):
    yield
    record(kind="test", nodeid=request.node.nodeid)
'''

# How long each test_work sleeps: from PYTEST_SUITE_SLEEP when set (fleet
# forwards PYTEST_* variables to its workers), so a serial run can be quick;
# and while the file PYTEST_SUITE_HOLD names exists.
TESTS = '''
import os, time
import pytest

@pytest.mark.parametrize("i", range({count}))
def test_work(i, shared):
    hold = os.environ.get("PYTEST_SUITE_HOLD")  # while this file exists (a minute at most)
    deadline = time.time() + 60
    while hold and os.path.exists(hold) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(float(os.environ.get("PYTEST_SUITE_SLEEP", {sleep})))
    assert shared["token"] == 42

def test_fails():
    assert 1 == 2

@pytest.mark.skip(reason="never")
def test_skipped():
    pass

@pytest.mark.xfail
def test_xfails():
    assert 0

def test_output(capsys):
    print("spoken on a node")
'''


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _nodes_in(output: str) -> set[str]:
    """The nodes ``-v`` names: ``[r1@10.0.0.2] PASSED``."""
    return set(re.findall(r"\[r\d+@([^\]]+)\] (?:PASSED|FAILED|SKIPPED|XFAIL|ERROR)", output))


def _suite(pytester: pytest.Pytester, modules: int = 3, count: int = 8, sleep: float = 0.05) -> Path:
    events = pytester.path / "events.jsonl"
    pytester.makeconftest(SUITE.format(events=str(events)))
    for m in range(modules):
        pytester.makepyfile(**{f"test_m{m}": TESTS.format(count=count, sleep=sleep)})
    return events


def test_a_run_across_two_nodes_is_a_serial_run(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    events = _suite(pytester, sleep=0)
    serial, expected = run_with_junit(pytester)
    assert expected and serial.ret == 1
    events.unlink()
    os.environ["PYTEST_SUITE_SLEEP"] = "0.4"  # long enough for every worker to start
    try:
        result, got = run_with_junit(pytester, "--ray", cluster.address, "--mp", "4", "-v", "--group-unit", "function",
                                     "--alluredir", "allure")
    finally:
        del os.environ["PYTEST_SUITE_SLEEP"]
    output = result.stdout.str()
    assert got == expected, output
    assert result.ret == serial.ret
    assert outcomes(result) == outcomes(serial)
    found = _events(events)
    tests = [e["nodeid"] for e in found if e["kind"] == "test"]
    ran = [test for test, outcome in expected.items() if outcome != "skipped"]
    assert sorted(tests) == sorted(set(tests)) and len(tests) == len(ran)  # each test once
    made = [e for e in found if e["kind"] == "made"]
    torn = [e for e in found if e["kind"] == "torn down"]
    assert len(made) == 1 and len(torn) == 1, found  # once for every node
    assert torn[0]["pid"] == made[0]["pid"]
    assert torn[0]["t"] >= max(e["t"] for e in found if e["kind"] == "test")  # after the last test
    assert len({e["pid"] for e in found if e["kind"] == "test"}) >= 2
    assert len(_nodes_in(output)) == 2, output  # tests ran on both nodes
    # Allure results, written on the nodes and shipped back: one per test
    results = [json.loads(p.read_text()) for p in (pytester.path / "allure").glob("*-result.json")]
    names = [(r["fullName"], json.dumps(r.get("parameters", []), sort_keys=True)) for r in results]
    assert len(names) == len(set(names)) == len(expected), names


def test_output_comes_back_with_the_worker_prefix(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_speak="def test_speak():\n    print('spoken on a node')\n")
    result = run(pytester, "--ray", cluster.address, "--mp", "2", "-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*[[]r?[]] spoken on a node*"])


def test_main_run_takes_the_address(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    _suite(pytester, modules=2, count=2)
    pytester.makepyfile(run=f"""
import sys
from fleet import main_run
sys.exit(main_run(ray={cluster.address!r}, mp=True, processes=2, pytest_args=["-p", "no:cacheprovider", "-v"]))
""")
    result = pytester.run(sys.executable, "run.py", timeout=120)
    assert result.ret == 1, result.stdout.str()
    assert outcomes(result) == {"passed": 6, "failed": 2, "skipped": 2, "xfailed": 2}
    assert _nodes_in(result.stdout.str())


def test_crashes_and_timeouts_as_on_one_machine(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_faults="""
import os, time
def test_slow():
    time.sleep(60)
def test_crash():
    os._exit(3)
def test_quick():
    pass
def test_after():
    pass
""")
    result, cases = run_with_junit(pytester, "--ray", cluster.address, "--mp", "2", "--group-unit", "function",
                                   "--test-timeout", "3", "--max-worker-restart", "2")
    output = result.stdout.str()
    assert cases == {"test_faults::test_slow": "failed", "test_faults::test_crash": "failed",
                     "test_faults::test_quick": "passed", "test_faults::test_after": "passed"}, output
    result.stdout.fnmatch_lines(["*test_slow - Timeout: the test ran longer than 3 s*"])
    result.stdout.fnmatch_lines(["*worker r? on node * crashed: exit code 3 while running test_faults.py::test_crash*"])
    assert "of --max-worker-restart 2)" in output


def test_the_timeline_groups_workers_by_node(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    _suite(pytester, modules=4, count=2)
    result = run(pytester, "--ray", cluster.address, "--mp", "4", "--timeline", "trace.json")
    assert result.ret == 1
    trace = json.loads((pytester.path / "trace.json").read_text())
    processes = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    assert len(processes) == 2 and all(name.startswith("node ") for name in processes), processes


def test_a_rootdir_holding_rays_own_files_is_refused(pytester: pytest.Pytester, monkeypatch) -> None:
    """pytest took /tmp as the rootdir (no ini file, ``--timeline /tmp/t.json``):
    Ray packed its own session directory into the package until the disk was full."""
    pytester.makepyfile(test_a="def test_a(): pass")
    (pytester.path / "ray").mkdir()
    monkeypatch.setenv("RAY_TMPDIR", str(pytester.path))
    result = run(pytester, "--ray", "127.0.0.1:1", "--rootdir", str(pytester.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in (result.stdout.str() + result.stderr.str()).splitlines() if line.strip()]
    assert len(lines) == 1 and "holds Ray's own files" in lines[0] and "Traceback" not in lines[0], lines
    assert not list(pytester.path.glob("ray/**/*.zip"))


def test_maxfail_stops_every_worker_across_nodes(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="""
        import time, pytest
        @pytest.mark.parametrize("i", range(60))
        def test_t(i):
            time.sleep(0.1)
            assert i != 3
    """)
    result = run(pytester, "--ray", cluster.address, "--mp", "2", "--group-unit", "function", "--maxfail", "1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    counts = outcomes(result)
    assert counts["failed"] == 1 and counts.get("passed", 0) < 30, counts
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_the_utilisation_summary_and_the_live_view_name_remote_workers(
    cluster: LocalCluster, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_s="""
        import time, pytest
        @pytest.mark.parametrize("i", range(8))
        def test_quick(i): time.sleep(0.2)
        def test_slow(): time.sleep(4)
    """)
    result = run(pytester, "--ray", cluster.address, "--mp", "2", "--group-unit", "function")
    assert result.ret == 0
    section = result.stdout.str().split("fleet ---")[1]
    for heading in ("workers: ", "busy: ", "idle tail: ", "slowest: "):
        assert heading in section, section
    assert "test_s.py::test_slow" in section.split("slowest: ")[1]
    # on a terminal: the live view, with a row per remote worker and the slow test flagged
    ansi = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--ray", cluster.address, "--mp", "2",
               "--group-unit", "function", "--slow-after", "1"]
    text = ansi.sub("", on_terminal(command, pytester.path))
    assert "ETA" in text and re.search(r"\b\d/9\b", text), text[-3000:]
    assert re.search(r"r\d on node \S+\s+test_s.py::test_slow\s+\d+\.\ds\s+SLOW", text), text[-3000:]
    assert "9 passed" in text[-400:]


def _processes() -> dict[int, tuple[int, bytes]]:
    """Every process: its parent and its command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), argv)
    return found


def _descendants(root: int) -> list[int]:
    table = _processes()
    found = []
    for pid, (parent, _) in table.items():
        while parent > 1:
            if parent == root:
                found.append(pid)
                break
            parent = table.get(parent, (0, b""))[0]
    return found


def test_a_node_that_joins_gets_workers_and_work(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    _suite(pytester, modules=6, count=6, sleep=0.2)
    events = pytester.path / "events.jsonl"
    hold = pytester.path / "hold"
    hold.touch()  # the first tests wait for the node to join and a worker there to collect
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--ray", cluster.address, "-v",
               "--group-unit", "function", "--junitxml", "junit.xml"]
    env = dict(os.environ, PYTEST_SUITE_HOLD=str(hold))
    with subprocess.Popen(command, cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run_:
        deadline = time.monotonic() + 60
        while not any(e["kind"] == "made" for e in _events(events)):
            assert time.monotonic() < deadline and run_.poll() is None, "the run did not start"
            time.sleep(0.2)
        port = cluster.add_node(cpus=2)
        _, joined = cluster.raylet_of(port)
        while not any(e["kind"] == "collected" and e["node"] == joined for e in _events(events)):
            assert time.monotonic() < deadline + 90 and run_.poll() is None, "no worker collected on the new node"
            time.sleep(0.2)
        hold.unlink()
        output, _ = run_.communicate(timeout=180)
    assert run_.returncode == 1, output
    assert len(junit_outcomes(pytester.path / "junit.xml")) == 6 * 10
    on_joined = [node for node in _nodes_in(output) if node.endswith("/" + joined[:6])]
    assert on_joined, output


def test_a_node_lost_fails_only_its_running_tests(cluster: LocalCluster, pytester: pytest.Pytester) -> None:
    """Runs last: it kills a node (its raylet and every process under it)."""
    _suite(pytester, modules=4, count=10, sleep=0.3)
    events = pytester.path / "events.jsonl"
    port = cluster.node_ports[0]
    pid, node_id = cluster.raylet_of(port)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--ray", cluster.address, "-v",
               "--mp", str(2 * (1 + len(cluster.node_ports))),  # every node full: some on the one killed
               "--group-unit", "function", "--junitxml", "junit.xml"]
    with subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run_:
        deadline = time.monotonic() + 60
        while len([e for e in _events(events) if e["kind"] == "test" and e["node"] == node_id]) < 2:
            assert time.monotonic() < deadline and run_.poll() is None, "no tests ran on the node"
            time.sleep(0.1)
        for doomed in [pid, *_descendants(pid)]:  # the machine gone: its raylet and its workers
            os.kill(doomed, signal.SIGKILL)
        output, _ = run_.communicate(timeout=180)
    cases = junit_outcomes(pytester.path / "junit.xml")
    assert len(cases) == 4 * 14, output  # every test has an outcome, once
    lost = re.findall(r"worker (r\d+) on node (\S+) lost: node died while (?:running|tearing down what it held after its last test,) (\S+)", output)
    assert lost, output
    assert all(node.endswith("/" + node_id[:6]) for _, node, _ in lost), output
    failed_work = {k for k, v in cases.items() if v != "passed" and "test_work" in k}
    assert 1 <= len(failed_work) <= 2, output  # only what ran there (a worker each)
    assert run_.returncode == 1
