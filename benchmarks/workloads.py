"""Generate the benchmark suites that fleet is measured on.

Each workload is a small, self-contained pytest project (its own ``pytest.ini``,
so the repository's own pytest settings never leak in) written into a
directory, by default ``benchmarks/_work/<name>`` (git-ignored). The suites
are generated rather than checked in so that their size is visible in one
place and so the CPU workload can be calibrated to the machine it runs on.

Suites record what they did into ``records/`` next to the tests (or into
``$FLEET_BENCH_RECORDS``): one line per event, written with ``O_APPEND`` so
that lines from many threads and many processes never interleave. The runner
deletes that directory before each run and reads it afterwards.

Usage: ``python benchmarks/workloads.py [NAME ...] [--dest DIR]``
"""

from __future__ import annotations

import argparse
import random
import shutil
import textwrap
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE / "_work"
# Present in every generated suite; only a directory holding it is ever wiped.
MARKER = ".fleet-bench"
RECORDS = "records"

PYTEST_INI = """\
[pytest]
# Isolates the suite from the repository's pyproject.toml (rootdir = here).
addopts =
markers =
    group(*names): fleet group mark (registered here too so plain pytest is quiet)
"""

# Shared by the suites that record events: an atomic one-line append.
RECORD_HELPER = '''\
import os
from pathlib import Path

RECORDS = Path(os.environ.get("FLEET_BENCH_RECORDS") or Path(__file__).parent / "records")


def record(name, line):
    """Append one line to records/<name>.txt; O_APPEND keeps concurrent lines whole."""
    RECORDS.mkdir(exist_ok=True)
    fd = os.open(RECORDS / f"{name}.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\\n".encode())
    finally:
        os.close(fd)
'''


def _module(body: str) -> str:
    return textwrap.dedent(body).lstrip()


def write_io(dest: Path) -> None:
    """400 tests that each sleep 50 ms, 20 modules of 20: pure waiting, no CPU."""
    tests = "".join(f"\n\ndef test_{i}():\n    time.sleep(0.05)\n" for i in range(20))
    for m in range(20):
        (dest / f"test_io_{m:02d}.py").write_text("import time\n" + tests)


def io_skew_durations() -> list[float]:
    """200 sleeps with a long tail (seeded, so every run measures the same suite):
    most tests take tens of milliseconds, a few take a second or more, the
    longest 2 s."""
    rng = random.Random(16)
    durations = [round(min(1.6, 0.01 * rng.paretovariate(1.1)), 3) for _ in range(199)]
    return durations + [2.0]  # the longest test, last in collection order


def write_io_skew(dest: Path) -> None:
    """200 sleeping tests of long-tailed durations, 10 modules of 20; the 2 s
    test is the last one collected, so collection order starts it last."""
    durations = io_skew_durations()
    for m in range(10):
        tests = "".join(
            f"\n\ndef test_{i}():\n    time.sleep({durations[m * 20 + i]})\n" for i in range(20)
        )
        (dest / f"test_skew_{m:02d}.py").write_text("import time\n" + tests)


LONG_TAIL_SMALL_S = 0.02
LONG_TAIL_LONGEST_S = 15.0


def write_long_tail(dest: Path) -> None:
    """One module of 300 small tests (20 ms) and one 15 s test, its last, plus
    5 modules of 100 small tests: as one group that module is the run's tail."""
    small = "".join(f"\n\ndef test_small_{i}():\n    time.sleep({LONG_TAIL_SMALL_S})\n" for i in range(300))
    (dest / "test_long_module.py").write_text(
        "import time\n" + small + f"\n\ndef test_longest():\n    time.sleep({LONG_TAIL_LONGEST_S})\n"
    )
    others = "".join(f"\n\ndef test_{i}():\n    time.sleep({LONG_TAIL_SMALL_S})\n" for i in range(100))
    for m in range(5):
        (dest / f"test_other_{m:02d}.py").write_text("import time\n" + others)


def write_trivial(dest: Path, count: int) -> None:
    """``count`` trivial tests in modules of 100: per-test overhead and nothing else."""
    tests = "".join(f"\n\ndef test_{i}():\n    assert True\n" for i in range(100))
    width = len(str(max(0, count - 1) // 100))
    for m in range(-(-count // 100)):
        body = tests if (m + 1) * 100 <= count else "".join(
            f"\n\ndef test_{i}():\n    assert True\n" for i in range(count - m * 100)
        )
        (dest / f"test_tiny_{m:0{max(2, width)}d}.py").write_text(body.lstrip())


def write_tiny(dest: Path) -> None:
    """5000 trivial tests, 50 modules of 100: measures per-test overhead only."""
    write_trivial(dest, 5000)


def write_fixtures(dest: Path) -> None:
    """200 tests, 10 modules; a 2 s session fixture and a 0.3 s module fixture.

    Each fixture records each execution, so the runner can tell whether a
    parallel runner really set the session fixture up once and each module
    fixture once per module. Tests sleep 50 ms, which with the fixtures gives
    the ~15 s serial time of the peer figures fleet is compared with.
    """
    (dest / "records_helper.py").write_text(RECORD_HELPER)
    (dest / "conftest.py").write_text(_module('''
        import time

        import pytest

        from records_helper import record


        @pytest.fixture(scope="session")
        def session_resource():
            record("session", "setup")
            time.sleep(2.0)
            yield "session"


        @pytest.fixture(scope="module")
        def module_resource(request, session_resource):
            record("module", request.module.__name__)
            time.sleep(0.3)
            yield "module"
    '''))
    tests = "".join(
        f"\n\ndef test_{i}(module_resource):\n    time.sleep(0.05)\n" for i in range(20)
    )
    for m in range(10):
        (dest / f"test_fixtures_{m:02d}.py").write_text("import time\n" + tests)


def write_groups(dest: Path) -> None:
    """10 groups x 10 tests that must run in order; each records (group, index).

    One module per group, also marked ``group("gN")``, so the order is required
    both by fleet's default module grouping and by the explicit mark.
    """
    (dest / "records_helper.py").write_text(RECORD_HELPER)
    for g in range(10):
        tests = "".join(
            f"\n\ndef test_{i}():\n    record(\"order\", \"g{g} {i}\")\n    time.sleep(0.1)\n"
            for i in range(10)
        )
        head = f'import time\n\nimport pytest\n\nfrom records_helper import record\n\npytestmark = pytest.mark.group("g{g}")\n'
        (dest / f"test_group_{g:02d}.py").write_text(head + tests)


def _spin(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def calibrate(seconds: float = 0.25) -> int:
    """Loop count for ``_spin`` that takes about ``seconds`` on this machine, now.

    The median of three timings, so one burst of other load does not skew it.
    """
    loops = 100_000
    while True:
        took = []
        for _ in range(3):
            start = time.perf_counter()
            _spin(loops)
            took.append(time.perf_counter() - start)
        took.sort()
        if took[1] >= 0.05:
            return max(1, int(loops * seconds / took[1]))
        loops *= 4


def write_cpu(dest: Path, loops: int | None = None) -> None:
    """40 tests of ~0.25 s pure-Python work, 4 modules: threads cannot beat the GIL here."""
    loops = loops or calibrate()
    spin = (
        f"LOOPS = {loops}  # calibrated for ~0.25 s when the suite was generated\n\n\n"
        "def spin():\n    total = 0\n    for i in range(LOOPS):\n        total += i * i % 7\n"
        "    return total\n"
    )
    tests = "".join(f"\n\ndef test_{i}():\n    assert spin() >= 0\n" for i in range(10))
    for m in range(4):
        (dest / f"test_cpu_{m:02d}.py").write_text(spin + tests)


WORKLOADS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "io": ("400 tests x 50 ms sleep, 20 modules", write_io),
    "tiny": ("5000 trivial tests, 50 modules", write_tiny),
    "fixtures": ("200 tests x 50 ms, 10 modules; 2 s session + 0.3 s module fixture", write_fixtures),
    "groups": ("10 groups x 10 ordered tests x 0.1 s", write_groups),
    "cpu": ("40 tests x ~0.25 s pure-Python CPU, 4 modules", write_cpu),
    "io_skew": ("200 sleeping tests, long-tailed durations (longest 2 s), 10 modules", write_io_skew),
    "long_tail": ("a module of 300 x 20 ms tests + one 15 s test; 5 modules of 100 x 20 ms", write_long_tail),
}


def generate(name: str, dest: Path | None = None, writer: Callable[[Path], None] | None = None) -> Path:
    """(Re)create the suite ``name`` in ``dest`` and return its directory
    (``writer`` writes a suite that is not one of :data:`WORKLOADS`)."""
    dest = Path(dest) if dest is not None else DEFAULT_ROOT / name
    if dest.exists():
        if not (dest / MARKER).exists() and any(dest.iterdir()):
            raise SystemExit(f"{dest} exists and is not a generated suite; refusing to wipe it")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / MARKER).write_text(f"{name}\n")
    (dest / "pytest.ini").write_text(PYTEST_INI)
    (writer or WORKLOADS[name][1])(dest)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(WORKLOADS)} (default all)")
    parser.add_argument("--dest", type=Path, help="parent directory (default benchmarks/_work)")
    args = parser.parse_args()
    unknown = set(args.names) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    for name in args.names or WORKLOADS:
        path = generate(name, args.dest / name if args.dest else None)
        print(f"{name:9} {path}")


if __name__ == "__main__":
    main()
