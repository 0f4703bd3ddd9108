"""``--ray`` on a two-node local Ray cluster against local worker processes.

Usage: ``python benchmarks/ray_cluster.py [--repeat N] [--workloads io,tiny]``
(run with a Python that has Ray: ``pip install -e ".[ray]"``).

Starts a Ray head and a second node on this machine (``ray start``, one CPU
each, token authentication on), generates the io and tiny suites
(``workloads.py``) and runs each, interleaving repeats, as:

* ``--ray ADDR --mp 2 --mt 32`` and ``--ray ADDR --mp 2``: a worker on each node;
* ``--mp 2 --mt 32`` and ``--mp 2``: local worker processes, the same plan.

(io runs with ``--group-unit function`` throughout.) It reports the cluster's
start-up, and for each run the wall time, the time from launch to the first
test starting on a worker, and the controller's CPU time per test between the
end of collection and the end of the run (``time.process_time()`` of the
controller process alone: an upper bound on its per-test cost). A conftest
added to each suite records those times; it reads ``PYTEST_BENCH_PROBE``,
which fleet forwards to remote workers like every ``PYTEST_*`` variable.
Targets: once the cluster is up, io with ``--ray`` within 1.5x of the same
local run, and the controller's cost per test under 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import generate  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))
PROBE = '''
import json, os, time

_FILE = os.environ.get("PYTEST_BENCH_PROBE")
_IN_WORKER = bool(os.environ.get("FLEET_WORKER"))
_first = []


def _write(**event):
    if _FILE:
        fd = os.open(_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, (json.dumps(event) + "\\n").encode())
        os.close(fd)


def pytest_collection_finish(session):
    if not _IN_WORKER:
        _write(kind="collected", cpu=time.process_time())


def pytest_runtest_setup(item):
    if not _first:
        _first.append(1)
        _write(kind="first", t=time.time())


def pytest_unconfigure(config):
    if not _IN_WORKER:
        _write(kind="end", cpu=time.process_time())
'''
TESTS = {"io": 400, "tiny": 5000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(env: dict[str, str]) -> tuple[str, float]:
    port = _free_port()
    address = f"127.0.0.1:{port}"
    begin = time.perf_counter()
    for args in (["--head", f"--port={port}", "--include-dashboard=false"], [f"--address={address}"]):
        subprocess.run([RAY, "start", *args, "--num-cpus=1", "--disable-usage-stats"], env=env, check=True,
                       capture_output=True, timeout=300)
    return address, time.perf_counter() - begin


def run_once(suite: Path, args: list[str], env: dict[str, str]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as probe:
        path = Path(probe.name)
    begin = time.time()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=suite,
                            env=dict(env, PYTEST_BENCH_PROBE=str(path)), capture_output=True, text=True, timeout=900)
    wall = time.time() - begin
    events = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    if result.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    cpu = {e["kind"]: e["cpu"] for e in events if "cpu" in e}
    first = min(e["t"] for e in events if e["kind"] == "first")
    return {"wall": wall, "first": first - begin, "controller_cpu": cpu["end"] - cpu["collected"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="io,tiny")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    env.pop("RAY_ADDRESS", None)
    address, cluster_start = start_cluster(env)
    print(f"cluster start (head + a second node, ray start): {cluster_start:.1f} s")
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        for name in options.workloads.split(","):
            suite = generate(name)
            (suite / "conftest.py").write_text(PROBE)
            unit = ["--group-unit", "function"] if name == "io" else []
            configurations = {
                f"--ray --mp 2 --mt 32": ["--ray", address, "--mp", "2", "--mt", "32", *unit],
                f"--ray --mp 2": ["--ray", address, "--mp", "2", *unit],
                "--mp 2 --mt 32": ["--mp", "2", "--mt", "32", *unit],
                "--mp 2": ["--mp", "2", *unit],
            }
            runs = results[name] = {label: [] for label in configurations}
            for _ in range(options.repeat):
                for label, args in configurations.items():
                    runs[label].append(run_once(suite, args, env))
            print(f"\n{name} ({TESTS[name]} tests), median of {options.repeat}:")
            print(f"  {'configuration':24} {'wall s':>8} {'first test s':>13} {'controller ms/test':>19}")
            for label, found in runs.items():
                wall = statistics.median(r["wall"] for r in found)
                first = statistics.median(r["first"] for r in found)
                per_test = statistics.median(r["controller_cpu"] for r in found) / TESTS[name] * 1000
                print(f"  {label:24} {wall:8.2f} {first:13.2f} {per_test:19.3f}")
            for mode in ("--mp 2 --mt 32", "--mp 2"):
                ratio = statistics.median(r["wall"] for r in runs[f"--ray {mode}"]) / statistics.median(
                    r["wall"] for r in runs[mode])
                print(f"  --ray {mode} / {mode}: {ratio:.2f}x wall")
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
    if options.json:
        options.json.write_text(json.dumps({"cluster_start": cluster_start, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
