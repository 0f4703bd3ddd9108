"""Run the benchmark workloads serially, under pytest-xdist and under fleet.

Every configuration runs as a fresh ``python -m pytest`` subprocess in the
workload's directory, so wall time includes interpreter start-up and
collection: that is what a user waits for. Each configuration runs
``--repeat`` times (the repeats are interleaved across configurations so that
drift in machine load affects all of them alike) and the median is reported.

Peak RSS comes from ``os.wait4`` on the child. On Linux that is the largest
single process among the child and the descendants it reaped, so for xdist it
is the largest worker or controller, not the sum over workers. Peak PSS is
sampled every 0.2 s and summed over every process of the run: the memory the
run really takes, with pages shared by forked processes counted once (runs
shorter than a sample show 0).

Targets print PASS or MISS; the exit status is 0 either way, because a missed
target is a finding to report, not a harness failure.

Usage: ``python benchmarks/run.py [--repeat N] [--workloads io,tiny,...]
[--json out.json] [--quick]``; ``python benchmarks/run.py --profile`` measures
fleet's cost per test instead (:mod:`overhead`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workloads  # noqa: E402

BASE_ARGS = ["-q", "-p", "no:cacheprovider"]
XDIST_WORKERS = (2, 4, 8)
FLEET_CONFIGS = {
    "io": [
        ["--mt", "64", "--group-unit", "function"],
        ["--mt", "auto"],
        ["--mp", "2", "--mt", "32", "--group-unit", "function"],
    ],
    "tiny": [["--mt", "auto"], ["--mt", "4"], ["--mp", "2"], ["--mp", "2", "--mt", "2"]],
    "fixtures": [["--mt", "16", "--group-unit", "function"], ["--mt", "auto"], ["--mp", "2", "--mt", "8"]],
    "groups": [["--mt", "10"], ["--mp", "2", "--mt", "5"]],
    "cpu": [["--mt", "auto"], ["--mp", "2"]],
    "io_skew": [["--mt", "64"], ["--mp", "2", "--mt", "16"]],
    "long_tail": [["--mp", "2"]],
}
# Workloads measured on fleet's second run: each fleet configuration has its
# own pytest cache directory, filled by one unmeasured run first, so the
# scheduler knows the durations (fleet/durations).
HISTORY_WORKLOADS = {"io_skew", "long_tail"}
# The fixtures workload's floor: the 2 s session fixture, then one module's
# 0.3 s fixture and its 20 tests of 50 ms, all modules side by side.
FIXTURES_LIMIT_S = 2.0 + 0.3 + 20 * 0.05
# Ideal wall time of io at 64-way: ceil(400 / 64) rounds of 50 ms.
IO_LIMIT_S = 0.31
RUN_TIMEOUT_S = 300
# Without this the cache-warming collection run would write no bytecode and
# every measured run would pay to rewrite and compile the suite again.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
OUTPUT_TAIL_LINES = 30


@dataclass
class Config:
    label: str
    kind: str  # serial | xdist | fleet
    args: list[str]
    cache_dir: str | None = None  # with pytest's cache on, here (HISTORY_WORKLOADS)
    times: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    pss_kb: list[int] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    session_counts: list[int] = field(default_factory=list)
    module_counts: list[int] = field(default_factory=list)
    violations: list[int] = field(default_factory=list)
    failed_output: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def source_state() -> str:
    """The fleet commit being measured, and whether src/ has uncommitted edits."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}{' + uncommitted src/ edits' if dirty else ''}"


def configurations(name: str, xdist: bool) -> list[Config]:
    configs = [Config("serial", "serial", [])]
    if xdist:
        configs += [Config(f"xdist -n {n}", "xdist", ["-n", str(n)]) for n in XDIST_WORKERS]
    history = name in HISTORY_WORKLOADS
    configs += [
        Config("fleet " + " ".join(a), "fleet", a, f".cache-{n}" if history else None)
        for n, a in enumerate(FLEET_CONFIGS[name])
    ]
    return configs


def pytest_args(config: Config) -> tuple[list[str], list[str]]:
    """(base arguments, arguments) of one run of ``config``."""
    if config.cache_dir is None:
        return BASE_ARGS, config.args
    return ["-q"], ["-o", f"cache_dir={config.cache_dir}", *config.args]


def remember_durations(suite: Path, config: Config) -> None:
    """One unmeasured run that leaves the durations in ``config``'s cache."""
    shutil.rmtree(suite / config.cache_dir, ignore_errors=True)
    base, args = pytest_args(config)
    run_pytest(suite, args, base=base)


PSS_SAMPLE_S = 0.2


def session_pss_kb(session: int) -> int:
    """Proportional set size summed over every process of ``session`` (Linux).

    PSS splits each shared page between the processes sharing it, so forked
    workers that share the controller's pages count them once in total.
    """
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:  # fields after the name: state ppid pgrp session
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (OSError, IndexError, ValueError):
            continue
    return total


class PssSampler(threading.Thread):
    """The peak of :func:`session_pss_kb` while a run lasts."""

    def __init__(self, session: int) -> None:
        super().__init__(daemon=True)
        self.session = session
        self.peak_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(PSS_SAMPLE_S):
            self.peak_kb = max(self.peak_kb, session_pss_kb(self.session))


def run_pytest(
    cwd: Path, args: list[str], env: dict[str, str] | None = None, base: list[str] = BASE_ARGS
) -> tuple[float, int, int, str, int]:
    """Run pytest once in ``cwd``: (wall seconds, exit code, peak RSS KiB of one
    process, output, peak PSS KiB summed over all its processes)."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", *base, *args],
            cwd=cwd,
            env=CHILD_ENV if env is None else env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout can kill xdist's workers too
        )
        lock, reaped = threading.Lock(), []
        sampler = PssSampler(proc.pid) if Path("/proc/self/smaps_rollup").exists() else None
        if sampler:
            sampler.start()

        def kill() -> None:
            with lock:
                if not reaped:
                    os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(RUN_TIMEOUT_S, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        with lock:
            reaped.append(True)
        timer.cancel()
        pss = 0
        if sampler:
            sampler.done.set()
            sampler.join()
            pss = sampler.peak_kb
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped
        out.seek(0)
        return wall, proc.returncode, usage.ru_maxrss, out.read(), pss


def summary_line(output: str) -> str:
    lines = [line.strip("= ") for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def order_violations(path: Path) -> int:
    """Tests that ran after a higher-indexed test of the same group."""
    highest: dict[str, int] = {}
    violations = 0
    for line in path.read_text().splitlines() if path.exists() else ():
        group, index = line.split()
        if int(index) < highest.get(group, -1):
            violations += 1
        highest[group] = max(highest.get(group, -1), int(index))
    return violations


def measure(name: str, suite: Path, config: Config) -> None:
    records = suite / workloads.RECORDS
    shutil.rmtree(records, ignore_errors=True)
    base, args = pytest_args(config)
    wall, code, rss, output, pss = run_pytest(suite, args, base=base)
    config.pss_kb.append(pss)
    config.times.append(wall)
    config.codes.append(code)
    config.rss_kb.append(rss)
    config.summaries.append(summary_line(output))
    if code != 0 and not config.failed_output:
        config.failed_output = "\n".join(output.splitlines()[-OUTPUT_TAIL_LINES:])
    if name == "fixtures":
        config.session_counts.append(count_lines(records / "session.txt"))
        config.module_counts.append(count_lines(records / "module.txt"))
    if name == "groups":
        config.violations.append(order_violations(records / "order.txt"))


def spread(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def find(configs: list[Config], label: str) -> Config | None:
    return next((c for c in configs if c.label == label), None)


def targets(name: str, configs: list[Config], collect_s: float) -> list[tuple[bool, str]]:
    serial = configs[0]
    xdist = [c for c in configs if c.kind == "xdist"]
    best_xdist = min(xdist, key=lambda c: c.median) if xdist else None
    results: list[tuple[bool, str]] = []
    if name == "io":
        fleet = find(configs, "fleet --mt 64 --group-unit function")
        if best_xdist:
            ratio = best_xdist.median / fleet.median
            results.append((ratio >= 4, f"io: fleet --mt 64 function {ratio:.1f}x faster than best xdist ({best_xdist.label}); need >= 4x"))
        limit = 3 * (IO_LIMIT_S + collect_s)
        results.append((fleet.median <= limit, f"io: fleet --mt 64 function {fleet.median:.2f} s; need <= 3 x (0.31 + {collect_s:.2f} collect) = {limit:.2f} s"))
        processes = find(configs, "fleet --mp 2 --mt 32 --group-unit function")
        ratio = processes.median / fleet.median
        results.append((ratio <= 1.1, f"io: fleet --mp 2 --mt 32 function {processes.median:.2f} s = {ratio:.2f}x threads mode; need <= 1.1x"))
    elif name == "tiny":
        fleet = find(configs, "fleet --mt auto")
        ratio = fleet.median / serial.median
        results.append((ratio <= 1.15, f"tiny: fleet --mt auto {ratio:.2f}x serial time; need <= 1.15x"))
        processes = find(configs, "fleet --mp 2")
        ratio = processes.median / serial.median
        results.append((ratio < 1, f"tiny: fleet --mp 2 {ratio:.2f}x serial time; need < 1x"))
        for fleet in (c for c in configs if c.kind == "fleet"):  # issue 16
            ratio = fleet.median / serial.median
            results.append((ratio <= 0.9, f"tiny: {fleet.label} {ratio:.2f}x serial time; need <= 0.9x"))
    elif name == "fixtures":
        for fleet in (c for c in configs if c.kind == "fleet"):
            ok = set(fleet.session_counts) == {1} and set(fleet.module_counts) == {10}
            results.append((ok, f"fixtures: {fleet.label} session ran {spread(fleet.session_counts)}x, module {spread(fleet.module_counts)}x; need 1 and 10"))
        processes = find(configs, "fleet --mp 2 --mt 8")
        limit = 1.3 * (FIXTURES_LIMIT_S + collect_s)
        results.append((processes.median <= limit, f"fixtures: fleet --mp 2 --mt 8 {processes.median:.2f} s; need <= 1.3 x ({FIXTURES_LIMIT_S:.1f} + {collect_s:.2f} collect) = {limit:.2f} s"))
    elif name == "groups":
        for fleet in (c for c in configs if c.kind == "fleet"):
            results.append((set(fleet.violations) == {0}, f"groups: {fleet.label} order violations {spread(fleet.violations)}; need 0"))
    elif name == "cpu":
        processes = find(configs, "fleet --mp 2")
        cpu_s = serial.median - collect_s
        limit = 1.1 * (cpu_s / 2 + collect_s)
        results.append((processes.median <= limit, f"cpu: fleet --mp 2 {processes.median:.2f} s; need <= 1.1 x ({cpu_s:.2f} CPU / 2 + {collect_s:.2f} collect) = {limit:.2f} s"))
        two = find(configs, "xdist -n 2")
        if two:
            results.append((processes.median <= two.median, f"cpu: fleet --mp 2 {processes.median:.2f} s vs xdist -n 2 {two.median:.2f} s; need not slower"))
    elif name == "io_skew":
        limit = 1.1 * (max(workloads.io_skew_durations()) + collect_s)
        for fleet in (c for c in configs if c.kind == "fleet"):
            results.append((fleet.median <= limit, f"io_skew: {fleet.label} {fleet.median:.2f} s (second run); need <= 1.1 x (longest {max(workloads.io_skew_durations()):.1f} + {collect_s:.2f} collect) = {limit:.2f} s"))
    elif name == "long_tail":
        processes = find(configs, "fleet --mp 2")
        total_s = serial.median - collect_s
        limit = 1.1 * max(total_s / 2, workloads.LONG_TAIL_LONGEST_S)
        results.append((processes.median <= limit, f"long_tail: fleet --mp 2 {processes.median:.2f} s (second run); need <= 1.1 x max({total_s:.2f} serial test time / 2, longest {workloads.LONG_TAIL_LONGEST_S:.0f}) = {limit:.2f} s"))
        two = find(configs, "xdist -n 2")
        if two:
            results.append((processes.median <= two.median, f"long_tail: fleet --mp 2 {processes.median:.2f} s vs xdist -n 2 {two.median:.2f} s; need not slower"))
    for config in configs:
        if config.kind == "fleet" and any(config.codes):
            results.append((False, f"{name}: {config.label} exit codes {config.codes}"))
    return results


def print_table(name: str, configs: list[Config], collect_s: float) -> None:
    serial = configs[0].median
    xdist = [c.median for c in configs if c.kind == "xdist"]
    best_xdist = min(xdist) if xdist else None
    extra = {"fixtures": "session/module", "groups": "violations"}.get(name, "")
    print(f"\n== {name}: {workloads.WORKLOADS[name][0]}  (collect-only {collect_s:.2f} s)")
    print(f"{'configuration':44} {'median s':>8} {'min':>6} {'max':>6} {'x serial':>8} {'x xdist':>8} {'RSS MiB':>7} {'PSS MiB':>7}  {extra:14} last run")
    for c in configs:
        vs_xdist = f"{best_xdist / c.median:8.2f}" if best_xdist else f"{'-':>8}"
        if name == "fixtures":
            info = f"{spread(c.session_counts)}/{spread(c.module_counts)}"
        elif name == "groups":
            info = spread(c.violations)
        else:
            info = ""
        print(
            f"{c.label:44} {c.median:8.2f} {min(c.times):6.2f} {max(c.times):6.2f} "
            f"{serial / c.median:8.2f} {vs_xdist} {max(c.rss_kb) / 1024:7.0f} {max(c.pss_kb) / 1024:7.0f}  {info:14} {c.summaries[-1]}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, help="runs per configuration (default 3; 1 with --quick)")
    parser.add_argument("--workloads", default=",".join(workloads.WORKLOADS), help="comma-separated (default all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="one run per configuration: a smoke test, not a measurement")
    parser.add_argument("--profile", action="store_true", help="instead: per-test overhead by component at 5000 and 100k tests (overhead.py)")
    args = parser.parse_args()
    if args.profile:
        import overhead

        return overhead.main(["--components", "--tests", "5000,100000", "--repeat", str(args.repeat or 3)])
    repeat = args.repeat or (1 if args.quick else 3)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = set(names) - set(workloads.WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    xdist = importlib.util.find_spec("xdist") is not None
    source = source_state()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; repeat {repeat}; fleet {source}")
    print("x serial / x xdist: speedup over serial / over the best xdist setting (> 1 is faster)")
    if not xdist:
        print("note: pytest-xdist is not installed; skipping the -n configurations")

    report: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "repeat": repeat, "fleet": source, "workloads": {}}
    all_targets: list[tuple[bool, str]] = []
    for name in names:
        suite = workloads.generate(name)
        # The first collection writes the bytecode cache; time the second.
        run_pytest(suite, ["--collect-only"])
        collect_s, code, _, output, _ = run_pytest(suite, ["--collect-only"])
        if code != 0:
            print(f"\n{name}: collection failed (exit {code}):\n{output}")
            continue
        configs = configurations(name, xdist)
        for config in configs:
            if config.cache_dir is not None:
                remember_durations(suite, config)
        for _ in range(repeat):
            for config in configs:
                measure(name, suite, config)
        print_table(name, configs, collect_s)
        for config in configs:
            if config.failed_output:
                print(f"\n-- {name} / {config.label}: exit codes {config.codes}; output tail:\n{config.failed_output}")
        found = targets(name, configs, collect_s)
        all_targets += found
        report["workloads"][name] = {
            "description": workloads.WORKLOADS[name][0],
            "collect_s": collect_s,
            "configs": [{**asdict(c), "median": c.median} for c in configs],
            "targets": [{"pass": ok, "text": text} for ok, text in found],
        }

    print("\n== targets")
    for ok, text in all_targets:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
