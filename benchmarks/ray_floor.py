"""What Ray itself needs before a remote test can start, against a local run.

Usage: ``python benchmarks/ray_floor.py [--repeat N]`` (a Python with Ray).

On the same two-node local cluster as ``ray_cluster.py`` it times, with no
fleet involved, the steps any Ray-based runner takes before its first remote
test, each in a fresh interpreter:

* ``import ray``;
* joining the cluster (``ray.init``) with the io suite as the job's
  ``working_dir`` (the way fleet ships a rootdir);
* a bare actor on each node (half a CPU each, pinned to its node) answering
  its first call, with that working directory;
* a remote worker's own start, measured here locally: ``python -m pytest
  --collect-only -q`` in the suite;

and, beside them, the whole local run it is compared with (``--mp 2 --mt 32
--group-unit function`` on io). The floor is the sum of the first four plus
the tests' own time (400 x 50 ms on 64 threads: 0.31 s); issue 15's target is
1.5x the local run's wall.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_cluster import RAY, start_cluster  # noqa: E402
from workloads import generate  # noqa: E402

TESTS_ALONE = 0.31  # ceil(400 / 64) rounds of 50 ms

DRIVER = """
import os, sys, time
begin = time.perf_counter()
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
imported = time.perf_counter()
ray.init(address=sys.argv[1], runtime_env={"working_dir": sys.argv[2]}, log_to_driver=False, logging_level="WARNING")
joined = time.perf_counter()

@ray.remote(num_cpus=0.5)
class Bare:
    def ping(self):
        return os.getpid()

nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
asked = time.perf_counter()
actors = [Bare.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote() for n in nodes]
ray.get([actor.ping.remote() for actor in actors])
answered = time.perf_counter()
print(imported - begin, joined - imported, answered - asked)
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    begin = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    env.pop("RAY_ADDRESS", None)
    suite = generate("io")
    address, cluster_start = start_cluster(env)
    print(f"cluster start (head + a second node, ray start): {cluster_start:.1f} s")
    steps: dict[str, list[float]] = {"import ray": [], "join, shipping the suite": [], "a bare actor on each node": [],
                                     "pytest start and collection": [], "local --mp 2 --mt 32": []}
    try:
        for _ in range(options.repeat):
            out = subprocess.run([sys.executable, "-c", DRIVER, address, str(suite)], cwd=suite, env=env, check=True,
                                 capture_output=True, text=True, timeout=300).stdout.split()
            for name, value in zip(list(steps)[:3], out):
                steps[name].append(float(value))
            steps["pytest start and collection"].append(
                timed([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"], suite, env))
            steps["local --mp 2 --mt 32"].append(timed(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mp", "2", "--mt", "32",
                 "--group-unit", "function"], suite, env))
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
    medians = {name: statistics.median(values) for name, values in steps.items()}
    print(f"\nio, medians of {options.repeat} (seconds):")
    for name, value in medians.items():
        print(f"  {name:30} {value:6.2f}")
    floor = sum(medians[name] for name in list(steps)[:4]) + TESTS_ALONE
    budget = 1.5 * medians["local --mp 2 --mt 32"]
    print(f"  {'floor (steps + 0.31 s of tests)':30} {floor:6.2f}")
    print(f"  {'target: 1.5x the local run':30} {budget:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
