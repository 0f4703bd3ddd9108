"""pytest-benchmark: the results table and --benchmark-json of a parallel run hold every benchmark."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_benchmark")

PLUGINS = ("pytest-benchmark",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "test_bench_math.py": """
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)


        def test_fib(benchmark):
            assert benchmark(fib, 15) == 610


        def test_sum(benchmark):
            benchmark.pedantic(sum, args=(range(10000),), rounds=20, iterations=5)
    """,
    "test_bench_parse.py": """
        import json

        DOC = json.dumps({"items": [{"id": i, "tags": ["a", "b"]} for i in range(200)]})


        def test_parse(benchmark):
            result = benchmark(json.loads, DOC)
            assert len(result["items"]) == 200


        def test_dump(benchmark):
            data = json.loads(DOC)
            benchmark(json.dumps, data)
    """,
    "test_plain.py": """
        def test_cpu_work():
            # an ordinary CPU-bound test that may run beside the benchmarks
            total = 0
            for i in range(500_000):
                total += i * i
            assert total > 0


        def test_fast():
            assert True
    """,
}

ARGS = ("--benchmark-json=bench.json", "--benchmark-max-time=0.05", "-ra")
BENCHMARKS = ["test_dump", "test_fib", "test_parse", "test_sum"]


def table_rows(run) -> list[str]:
    """The names in the rows of the "benchmark: N tests" table."""
    rows, inside = [], False
    for line in run.stdout.splitlines():
        if " benchmark: " in line and line.startswith("-"):
            inside = True
        elif inside and line.startswith("Legend"):
            break
        elif inside and line.startswith("test_"):
            rows.append(line.split()[0])
    return sorted(rows)


@over_modes
def test_benchmark(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, *ARGS)
    assert_counts(got, "6 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    assert got.lines(r"^-+ benchmark: 4 tests -+$"), f"[{mode}] no 'benchmark: 4 tests' table\n{got.tail()}"
    assert table_rows(got) == BENCHMARKS, f"[{mode}] table rows {table_rows(got)}"
    assert "Not saving anything" not in got.output, f"[{mode}] pytest-benchmark saw no benchmarks\n{got.tail()}"
    assert got.file("bench.json").exists(), f"[{mode}] no bench.json written\n{got.tail()}"
    data = json.loads(got.file("bench.json").read_text())
    expected = json.loads(serial.file("bench.json").read_text())
    assert sorted(data) == sorted(expected) == ["benchmarks", "commit_info", "datetime", "machine_info", "version"]
    by_name = {b["name"]: b for b in data["benchmarks"]}
    serial_by_name = {b["name"]: b for b in expected["benchmarks"]}
    assert sorted(by_name) == BENCHMARKS, sorted(by_name)
    for name, entry in serial_by_name.items():
        mine = by_name[name]
        assert sorted(mine) == sorted(entry), f"[{mode}] {name}: keys {sorted(mine)}"
        assert sorted(mine["stats"]) == sorted(entry["stats"]), f"[{mode}] {name}: stats keys"
        for key in ("group", "fullname", "params", "param", "extra_info", "options"):
            assert mine[key] == entry[key], f"[{mode}] {name}: {key} {mine[key]!r}, serial {entry[key]!r}"
    assert by_name["test_sum"]["stats"]["rounds"] == 20
    assert by_name["test_sum"]["stats"]["iterations"] == 5
