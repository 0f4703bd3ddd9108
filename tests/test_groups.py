"""Groups: order inside a group, concurrency between groups, exclusive tests."""

from __future__ import annotations

from collections import defaultdict

import pytest

from conftest import outcomes, run


def ordered_modules(pytester: pytest.Pytester, modules: int, tests: int, sleep: float) -> None:
    for m in range(modules):
        body = "import time\n" + "".join(
            f"def test_{i:02d}():\n    time.sleep({sleep})\n" for i in range(tests)
        )
        pytester.makepyfile(**{f"test_m{m:02d}": body})


def spans(events: list[dict]) -> dict[str, tuple[float, float]]:
    start = {e["test"]: e["t"] for e in events if e["kind"] == "start"}
    return {e["test"]: (start[e["test"]], e["t"]) for e in events if e["kind"] == "end"}


def by_module(span: dict[str, tuple[float, float]]) -> dict[str, list[tuple[str, float, float]]]:
    modules: dict[str, list] = defaultdict(list)
    for test, (s, e) in span.items():
        modules[test.split("::")[0]].append((test, s, e))
    return modules


def test_tests_of_a_module_run_in_order_and_modules_run_together(pytester, probe) -> None:
    ordered_modules(pytester, modules=10, tests=10, sleep=0.02)
    result = run(pytester, "--mt", "10")
    assert outcomes(result) == {"passed": 100}
    events = probe()
    for tests in by_module(spans(events)).values():
        by_start = sorted(tests, key=lambda t: t[1])
        assert [t[0] for t in by_start] == sorted(t[0] for t in tests), "out of order"
        for earlier, later in zip(by_start, by_start[1:]):
            assert earlier[2] <= later[1], f"{earlier[0]} overlapped {later[0]}"
    # n groups and N >= n threads: all n groups run at once, not n-1.
    assert max(e["running"] for e in events if e["kind"] == "start") == 10


def test_more_threads_than_groups_keeps_every_group_busy(pytester, probe) -> None:
    ordered_modules(pytester, modules=3, tests=4, sleep=0.1)
    result = run(pytester, "--mt", "16")
    assert result.ret == 0
    assert max(e["running"] for e in probe() if e["kind"] == "start") == 3


def test_group_unit_function_runs_every_test_concurrently(pytester, probe) -> None:
    ordered_modules(pytester, modules=1, tests=12, sleep=0.1)
    run(pytester, "--mt", "12", "--group-unit", "function")
    assert max(e["running"] for e in probe() if e["kind"] == "start") == 12


def test_group_unit_class_groups_by_class(pytester, probe) -> None:
    pytester.makepyfile(
        """
        import time
        class TestA:
            def test_1(self): time.sleep(0.1)
            def test_2(self): time.sleep(0.1)
        class TestB:
            def test_1(self): time.sleep(0.1)
            def test_2(self): time.sleep(0.1)
        """
    )
    run(pytester, "--mt", "4", "--group-unit", "class")
    events = probe()
    assert max(e["running"] for e in events if e["kind"] == "start") == 2
    span = spans(events)
    for cls in ("TestA", "TestB"):
        first, second = (span[f"test_group_unit_class_groups_by_class.py::{cls}::test_{i}"] for i in (1, 2))
        assert first[1] <= second[0]


@pytest.mark.parametrize(
    "ini, addopts, cli, expected_peak",
    [
        ("function", None, None, 4),  # ini option
        ("function", "module", None, 1),  # addopts beats ini
        ("function", "module", "function", 4),  # command line beats addopts
    ],
)
def test_group_unit_priority(pytester, probe, ini, addopts, cli, expected_peak) -> None:
    lines = ["[pytest]", f"group_unit = {ini}"]
    if addopts:
        lines.append(f"addopts = --group-unit={addopts}")
    pytester.makeini("\n".join(lines))
    ordered_modules(pytester, modules=1, tests=4, sleep=0.1)
    args = ["--mt", "4"] + (["--group-unit", cli] if cli else [])
    assert run(pytester, *args).ret == 0
    assert max(e["running"] for e in probe() if e["kind"] == "start") == expected_peak


def test_group_marks_as_in_the_seed(pytester, probe) -> None:
    """Marks are inherited, the closest wins, and group() takes a test out of any group."""
    pytester.makepyfile(
        test_marks="""
        import time, pytest
        pytestmark = pytest.mark.group("g5")
        def test1(): time.sleep(0.15)
        @pytest.mark.group("g1", "g4")
        def test2(): time.sleep(0.15)
        @pytest.mark.group("g1", "g2")
        class TestX:
            def test3(self): time.sleep(0.15)
            @pytest.mark.group("g3")
            def test4(self): time.sleep(0.15)
        @pytest.mark.group()
        def test5(): time.sleep(0.15)
        @pytest.mark.group()
        def test6(): time.sleep(0.15)
        """,
        test_other="""
        import time, pytest
        @pytest.mark.group("g1")
        def test7(): time.sleep(0.15)
        """,
    )
    result = run(pytester, "--mt", "8")
    assert outcomes(result) == {"passed": 7}
    span = {k.split("::")[-1]: v for k, v in spans(probe()).items()}

    def before(a: str, b: str) -> bool:
        return span[a][1] <= span[b][0]

    def overlap(a: str, b: str) -> bool:
        return span[a][0] < span[b][1] and span[b][0] < span[a][1]

    # g1 = test2, test3 (test_marks), test7 (test_other): in collection order.
    assert before("test2", "test3") and before("test3", "test7")
    # test1 (g5), test4 (g3), test5/test6 (no group) share no group with g1's head.
    assert overlap("test1", "test2") and overlap("test4", "test2")
    assert overlap("test5", "test6")


def test_xdist_group_mark_is_a_group(pytester, probe) -> None:
    pytester.makepyfile(
        """
        import time, pytest
        @pytest.mark.xdist_group(name="db")
        def test_a(): time.sleep(0.1)
        @pytest.mark.xdist_group("db")
        def test_b(): time.sleep(0.1)
        @pytest.mark.xdist_group(name="db")
        def test_c(): time.sleep(0.1)
        """
    )
    run(pytester, "--mt", "3", "--group-unit", "function")
    assert max(e["running"] for e in probe() if e["kind"] == "start") == 1


def test_exclusive_tests_run_alone(pytester, probe) -> None:
    ordered_modules(pytester, modules=4, tests=3, sleep=0.05)
    pytester.makepyfile(
        test_alone="""
        import time, pytest
        @pytest.mark.exclusive
        def test_marked(): time.sleep(0.1)
        def test_fd(capfd):
            import os
            os.write(1, b"fd-level\\n")
            time.sleep(0.1)
            assert capfd.readouterr().out == "fd-level\\n"
        """
    )
    result = run(pytester, "--mt", "8", "--group-unit", "function")
    assert outcomes(result) == {"passed": 14}
    events = probe()
    for e in events:
        if e["kind"] == "start" and e["test"].startswith("test_alone.py"):
            assert e["running"] == 1, e
    span = spans(events)
    for name in ("test_alone.py::test_marked", "test_alone.py::test_fd"):
        s, t = span[name]
        others = [v for k, v in span.items() if k != name]
        assert all(e <= s or b >= t for b, e in others), f"{name} ran beside another test"


def test_nextitem_is_the_next_test_of_the_group(pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_runtest_teardown(item, nextitem):
            print(f"NEXT {item.name} -> {nextitem.name if nextitem else None}")
        """
    )
    pytester.makepyfile(
        test_a="def test_a1(): pass\ndef test_a2(): pass\ndef test_a3(): pass",
        test_b="def test_b1(): pass\ndef test_b2(): pass",
    )
    result = run(pytester, "--mt", "2", "-rP")
    text = result.stdout.str()
    for line in ("test_a1 -> test_a2", "test_a2 -> test_a3", "test_a3 -> None",
                 "test_b1 -> test_b2", "test_b2 -> None"):
        assert f"NEXT {line}" in text
