"""Durations remembered in pytest's cache, and the scheduler using them: the
longest work starts first, a module that would be the run's tail is split,
and nothing is read or written with the cache provider off."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import outcomes

DURATIONS = Path(".pytest_cache", "v", "fleet", "durations")

# Three groups in collection order: two short ones, then a long one (third). Each test
# records its (group, index), so the order within a group can be checked.
GROUP_MODULE = """
import time
import pytest

pytestmark = pytest.mark.group("{name}")

@pytest.mark.parametrize("n", range(4))
def test_{name}(n):
    time.sleep({seconds})
"""


def write_groups(pytester: pytest.Pytester) -> None:
    for name, seconds in (("first", 0.001), ("second", 0.001), ("third", 0.15)):
        pytester.makepyfile(**{f"test_{name}": GROUP_MODULE.format(name=name, seconds=seconds)})


def run_cached(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A run with pytest's cache provider on (fleet's own tests turn it off)."""
    return pytester.runpytest_subprocess(*args, timeout=120)


def slices_in_start_order(trace_file: Path) -> list[dict]:
    trace = json.loads(trace_file.read_text())
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    tests = [dict(e, worker=names[(e["pid"], e["tid"])]) for e in trace["traceEvents"]
             if e["ph"] == "X" and e["cat"] == "test"]
    return sorted(tests, key=lambda e: e["ts"])


def stored(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / DURATIONS).read_text())


# With one worker tests start in the order they are handed out; with two,
# which worker starts first is a race, so the long group must be among the
# first two tests started.
@pytest.mark.parametrize("mode", [["--mp", "1"], ["--mt", "2"], ["--mp", "2"]], ids=["one-process", "threads", "processes"])
def test_the_longest_group_starts_first_once_durations_are_known(pytester: pytest.Pytester, mode: list[str]) -> None:
    write_groups(pytester)
    first = run_cached(pytester, *mode, "--timeline", "first.json")
    assert outcomes(first) == {"passed": 12}, first.stdout.str()
    # written: every test's duration, the long ones longer
    durations = stored(pytester)["tests"]
    assert len(durations) == 12
    assert min(v for k, v in durations.items() if "test_third" in k) > max(v for k, v in durations.items() if "test_third" not in k)
    if mode == ["--mp", "1"]:  # without history, collection order: the long group, collected last, runs last
        assert [e["name"] for e in slices_in_start_order(pytester.path / "first.json")][-4:] == [
            f"test_third.py::test_third[{n}]" for n in range(4)
        ]

    second = run_cached(pytester, *mode, "--timeline", "second.json")
    assert outcomes(second) == {"passed": 12}, second.stdout.str()
    started = slices_in_start_order(pytester.path / "second.json")
    assert "test_third.py::test_third[0]" in [e["name"] for e in started[: 1 if mode == ["--mp", "1"] else 2]]
    # the group's order holds, on one worker
    long_group = [e for e in started if e["name"].startswith("test_third.py")]
    assert [e["name"] for e in long_group] == [f"test_third.py::test_third[{n}]" for n in range(4)]
    assert len({e["worker"] for e in long_group}) == 1
    assert "split across workers" not in second.stdout.str()  # a marked group is never split


def test_durations_merge_over_runs(pytester: pytest.Pytester) -> None:
    write_groups(pytester)
    run_cached(pytester, "--mt", "2")
    before = stored(pytester)["tests"]
    narrowed = run_cached(pytester, "--mt", "2", "-k", "first")
    assert outcomes(narrowed) == {"passed": 4, "deselected": 8}
    after = stored(pytester)["tests"]
    assert set(after) == set(before)  # the tests that did not run are kept
    assert all(after[k] != before[k] for k in after if "test_first" in k)  # measured again


def test_nothing_is_read_or_written_without_the_cache_provider(pytester: pytest.Pytester) -> None:
    write_groups(pytester)
    result = run_cached(pytester, "-p", "no:cacheprovider", "--mt", "2")
    assert outcomes(result) == {"passed": 12}
    assert not (pytester.path / ".pytest_cache").exists()

    run_cached(pytester, "--mt", "2")  # writes durations
    assert (pytester.path / DURATIONS).exists()
    ignored = run_cached(pytester, "-p", "no:cacheprovider", "--mp", "1", "--timeline", "t.json")
    assert outcomes(ignored) == {"passed": 12}
    assert slices_in_start_order(pytester.path / "t.json")[0]["name"].startswith("test_first.py")


def test_a_broken_durations_file_is_ignored(pytester: pytest.Pytester) -> None:
    write_groups(pytester)
    path = pytester.path / DURATIONS
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"tests": {"test_first.py::test_first[0]": "slow", "x": -1}, "fixtures": [3]}))
    result = run_cached(pytester, "--mp", "1", "--timeline", "t.json")
    assert outcomes(result) == {"passed": 12}, result.stdout.str()
    assert slices_in_start_order(pytester.path / "t.json")[0]["name"].startswith("test_first.py")
    assert len(stored(pytester)["tests"]) == 12  # rewritten whole


TAIL_MODULE = """
import time

def test_long():
    time.sleep(0.8)

{small}
"""
SMALL_TESTS = "\n".join(f"def test_small_{i}():\n    time.sleep(0.02)\n" for i in range(12))


@pytest.mark.parametrize("mode", [["--mp", "2"], ["--mt", "2"]], ids=["processes", "threads"])
def test_a_module_that_would_be_the_tail_is_split_across_workers(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makepyfile(
        test_tail=TAIL_MODULE.format(small=SMALL_TESTS),
        test_other="import time\n" + SMALL_TESTS,
    )
    first = run_cached(pytester, *mode, "--timeline", "first.json")
    assert outcomes(first) == {"passed": 25}
    assert "split across workers" not in first.stdout.str()
    tail = [e for e in slices_in_start_order(pytester.path / "first.json") if e["name"].startswith("test_tail.py")]
    assert len({e["worker"] for e in tail}) == 1  # one group, one worker

    second = run_cached(pytester, *mode, "--timeline", "second.json")
    assert outcomes(second) == {"passed": 25}
    second.stdout.fnmatch_lines(["split across workers (from remembered durations, it would have been the run's tail): test_tail.py (*s expected)"])
    started = slices_in_start_order(pytester.path / "second.json")
    assert "test_tail.py::test_long" in [e["name"] for e in started[:2]]  # one of the two workers' first
    by_worker: dict[str, list[str]] = defaultdict(list)
    for event in started:
        by_worker[event["worker"]].append(event["name"])
    long_worker = next(w for w, names in by_worker.items() if "test_tail.py::test_long" in names)
    others = [name for w, names in by_worker.items() if w != long_worker for name in names]
    assert any(name.startswith("test_tail.py::test_small") for name in others)  # the module ran on both


def test_a_module_with_costly_fixtures_stays_whole_under_processes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_tail="import pytest, time\n\n@pytest.fixture(scope='module', autouse=True)\ndef costly():\n    time.sleep(0.3)\n"
        + TAIL_MODULE.format(small=SMALL_TESTS),
        test_other="import time\n" + SMALL_TESTS,
    )
    run_cached(pytester, "--mp", "2")
    assert stored(pytester)["fixtures"]["test_tail.py"] >= 0.3
    second = run_cached(pytester, "--mp", "2")
    assert outcomes(second) == {"passed": 25}
    assert "split across workers" not in second.stdout.str()


def test_no_work_waits_behind_a_long_test_under_processes(pytester: pytest.Pytester) -> None:
    """The worker running the long test holds nothing else back: the other
    worker runs the groups, longest first, before any free test."""
    pytester.makepyfile(test_long="import pytest, time\npytestmark = pytest.mark.group('long')\n\ndef test_long():\n    time.sleep(1.0)\n")
    for n, seconds in ((1, 0.08), (2, 0.06), (3, 0.04)):
        pytester.makepyfile(**{f"test_g{n}": GROUP_MODULE.format(name=f"g{n}", seconds=seconds)})
    pytester.makepyfile(test_free="import pytest, time\npytestmark = pytest.mark.group()\n"
                        + "".join(f"\ndef test_free_{i}():\n    time.sleep(0.005)\n" for i in range(10)))
    run_cached(pytester, "--mp", "2")
    second = run_cached(pytester, "--mp", "2", "--timeline", "second.json")
    assert outcomes(second) == {"passed": 23}, second.stdout.str()
    started = [e["name"] for e in slices_in_start_order(pytester.path / "second.json")]
    assert "test_long.py::test_long" in started[:2]
    grouped = [name for name in started if name.startswith("test_g")]
    assert [name.split("::")[0] for name in grouped[::4]] == ["test_g1.py", "test_g2.py", "test_g3.py"]
    first_free = min(started.index(name) for name in started if name.startswith("test_free"))
    assert all(started.index(name) < first_free for name in grouped)
