"""Division into units by mark, file, suite and strategy file (aomaker's --dist-*)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from conftest import outcomes, run

RECORDER = """
import json, os, time, pytest
@pytest.fixture(autouse=True)
def _record(request, worker_id):
    start = time.monotonic()
    yield
    with open(os.path.join(os.path.dirname(__file__), "ran.jsonl"), "a") as f:
        f.write(json.dumps({"test": request.node.nodeid, "worker": worker_id,
                            "start": start, "end": time.monotonic()}) + "\\n")
"""


def ran(pytester: pytest.Pytester) -> list[dict]:
    path = pytester.path / "ran.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def marked_suite(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RECORDER)
    pytester.makeini("[pytest]\nmarkers =\n    m1\n    m2\n    m3\n    slow\n    iaas_image\n"
                     "    iaas_volume\n    iaas_image_p2\n    iaas_volume_p2\n    iaas_network_p2\n"
                     "    hpc_sw\n    hpc_fs\n")
    pytester.makepyfile(
        test_a="""
        import time, pytest
        @pytest.mark.m1
        def test_a1(): time.sleep(0.05)
        @pytest.mark.m2
        def test_a2(): time.sleep(0.05)
        @pytest.mark.m1
        @pytest.mark.slow
        def test_a3(): time.sleep(0.05)
        def test_unmarked(): pass
        """,
        test_b="""
        import time, pytest
        @pytest.mark.m2
        def test_b1(): time.sleep(0.05)
        @pytest.mark.m1
        def test_b2(): time.sleep(0.05)
        @pytest.mark.m1
        @pytest.mark.m2
        def test_both(): time.sleep(0.05)
        @pytest.mark.m3
        def test_b3(): pass
        """,
    )


def by_worker(records: list[dict]) -> dict[str, list[str]]:
    workers: dict[str, list[str]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r["start"]):
        workers[r["worker"]].append(r["test"].split("::")[-1])
    return dict(workers)


@pytest.mark.parametrize("marks", [["m1", "m2"], ["m1 m2"]])
def test_dist_mark_one_unit_per_mark_in_order(pytester: pytest.Pytester, marks) -> None:
    marked_suite(pytester)
    result = run(pytester, "--mt", "--dist-mark", *marks, "-v")
    assert outcomes(result) == {"passed": 6, "deselected": 2}
    result.stdout.fnmatch_lines([
        "fleet: 2 units by mark (--dist-mark): m1 (4), m2 (3)",
        "fleet: test_b.py::test_both has marks m1 and m2: it runs once, when both units have reached it",
    ])
    records = ran(pytester)
    assert sorted(r["test"].split("::")[-1] for r in records) == sorted(
        ["test_a1", "test_a3", "test_b2", "test_both", "test_a2", "test_b1"])
    # Each unit ran in collection order; two workers, as many as units.
    order = [r["test"].split("::")[-1] for r in sorted(records, key=lambda r: r["start"])]
    m1 = [t for t in order if t in ("test_a1", "test_a3", "test_b2", "test_both")]
    m2 = [t for t in order if t in ("test_a2", "test_b1", "test_both")]
    assert m1 == ["test_a1", "test_a3", "test_b2", "test_both"]
    assert m2 == ["test_a2", "test_b1", "test_both"]
    assert {r["worker"] for r in records} == {"t0", "t1"}


def test_dist_mark_without_mt_uses_one_thread_per_unit(pytester: pytest.Pytester) -> None:
    marked_suite(pytester)
    result = run(pytester, "--dist-mark", "m1", "m2", "m3")
    assert outcomes(result) == {"passed": 7, "deselected": 1}
    assert {r["worker"] for r in ran(pytester)} == {"t0", "t1", "t2"}


def test_users_own_m_narrows_the_selection(pytester: pytest.Pytester) -> None:
    marked_suite(pytester)
    result = run(pytester, "--mt", "4", "--dist-mark", "m1", "m2", "-m", "not slow")
    assert outcomes(result) == {"passed": 5, "deselected": 3}
    assert "test_a3" not in {r["test"].split("::")[-1] for r in ran(pytester)}


def test_a_mark_that_selects_nothing_is_a_usage_error(pytester: pytest.Pytester) -> None:
    marked_suite(pytester)
    result = run(pytester, "--mt", "--dist-mark", "m1", "nosuchmark")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [l for l in result.stderr.lines if l.strip()]
    assert errors == ["ERROR: fleet: --dist-mark nosuchmark: no collected test has this mark"]
    assert not ran(pytester)


def directories(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RECORDER)
    for rel in ("suite/alpha/test_a1.py", "suite/alpha/test_a2.py", "suite/beta/deep/test_b.py",
                "suite/test_top.py", "other/test_other.py"):
        path = pytester.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        name = path.stem
        path.write_text("import time\n" + "".join(
            f"def test_{name}_{i}():\n    time.sleep(0.03)\n" for i in range(3)))


def test_dist_file_one_unit_per_module_under_dir(pytester: pytest.Pytester) -> None:
    directories(pytester)
    result = run(pytester, "--mt", "--dist-file", "suite")
    assert outcomes(result) == {"passed": 12, "deselected": 3}
    result.stdout.fnmatch_lines(["fleet: 4 units by file (--dist-file): *"])
    workers = by_worker(ran(pytester))
    assert len(workers) == 4
    for tests in workers.values():  # one module per worker, in order
        assert tests == sorted(tests) and len({t.rsplit("_", 1)[0] for t in tests}) == 1


def test_dist_suite_one_unit_per_sub_directory(pytester: pytest.Pytester) -> None:
    directories(pytester)
    result = run(pytester, "--mt", "--dist-suite", "suite")
    assert outcomes(result) == {"passed": 12, "deselected": 3}
    result.stdout.fnmatch_lines(["fleet: 3 units by suite (--dist-suite): alpha (6), beta (3), . (3)"])
    # functions are named test_<module>_<i>, modules test_a1, test_b, ...
    units = {frozenset(t.removeprefix("test_test_").rsplit("_", 1)[0] for t in tests)
             for tests in by_worker(ran(pytester)).values()}
    assert units == {frozenset({"a1", "a2"}), frozenset({"b"}), frozenset({"top"})}


@pytest.mark.parametrize("option", ["--dist-file", "--dist-suite"])
def test_missing_directory_is_a_usage_error(pytester: pytest.Pytester, option: str) -> None:
    directories(pytester)
    result = run(pytester, "--mt", option, "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [l for l in result.stderr.lines if l.strip()] == [
        f"ERROR: fleet: {option} nowhere: no such directory"]


SEED_STRATEGY = """
target: {target}
marks:
  iaas:
    smoke: [iaas_image, iaas_volume]
    p2: [iaas_image_p2, iaas_volume_p2, iaas_network_p2]
  hpc: [hpc_sw, hpc_fs]
"""


def strategy_suite(pytester: pytest.Pytester, target: str) -> None:
    marked_suite(pytester)
    (pytester.path / "conf").mkdir()
    (pytester.path / "conf" / "dist_strategy.yaml").write_text(SEED_STRATEGY.format(target=target))
    marks = ["iaas_image", "iaas_volume", "iaas_image_p2", "iaas_volume_p2", "iaas_network_p2",
             "hpc_sw", "hpc_fs"]
    pytester.makepyfile(test_cloud="import pytest\n" + "".join(
        f"@pytest.mark.{m}\ndef test_{m}(): pass\n" for m in marks))


@pytest.mark.parametrize("target, units", [
    ("['iaas.smoke', 'hpc']", ["iaas_image", "iaas_volume", "hpc_sw", "hpc_fs"]),
    ("['iaas.p2', 'hpc']", ["iaas_image_p2", "iaas_volume_p2", "iaas_network_p2", "hpc_sw", "hpc_fs"]),
    ("[iaas]", ["iaas_image", "iaas_volume", "iaas_image_p2", "iaas_volume_p2", "iaas_network_p2"]),
])
def test_strategy_file_yields_one_unit_per_mark(pytester: pytest.Pytester, target, units) -> None:
    strategy_suite(pytester, target)
    result = run(pytester, "--mt")
    assert outcomes(result)["passed"] == len(units)
    listed = ", ".join(f"{u} (1)" for u in units)
    result.stdout.fnmatch_lines([f"fleet: {len(units)} units by mark (conf/dist_strategy.yaml): {listed}"])


def test_explicit_dist_option_wins_over_the_strategy_file(pytester: pytest.Pytester) -> None:
    strategy_suite(pytester, "[hpc]")
    result = run(pytester, "--mt", "--dist-mark", "m3")
    assert outcomes(result) == {"passed": 1, "deselected": 14}


def test_strategy_file_is_only_read_with_mt(pytester: pytest.Pytester) -> None:
    strategy_suite(pytester, "[hpc]")
    assert outcomes(run(pytester)) == {"passed": 15}


@pytest.mark.parametrize("content, message", [
    ("target: [iaas.smoke\nmarks: {}", "conf/dist_strategy.yaml: not valid YAML at line 2: *"),
    ("target: ['iaas.p3']\nmarks:\n  iaas:\n    smoke: [a]",
     "conf/dist_strategy.yaml: target 'iaas.p3' is not in 'marks' (known: iaas.smoke, iaas)"),
    ("target: 3\nmarks: {}", "conf/dist_strategy.yaml: 'target' must be a list of category or "
     "category.strategy names, not int 3"),
    ("target: [hpc]\nmarks:\n  hpc: {smoke: 7}",
     "conf/dist_strategy.yaml: 'marks.hpc.smoke' must be a list of mark names, not int 7"),
    ("- just\n- a list", "conf/dist_strategy.yaml: expected a mapping with 'target' and 'marks', not list*"),
])
def test_bad_strategy_file_is_one_line_naming_file_and_key(pytester, content, message) -> None:
    pytester.makepyfile("def test_a(): pass")
    (pytester.path / "conf").mkdir()
    (pytester.path / "conf" / "dist_strategy.yaml").write_text(content)
    result = run(pytester, "--mt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [l for l in result.stderr.lines if l.strip()]
    assert len(errors) == 1, errors
    from fnmatch import fnmatch
    assert fnmatch(errors[0], f"ERROR: fleet: {message}"), errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_dist_strategy_option_and_older_file_name(pytester: pytest.Pytester) -> None:
    strategy_suite(pytester, "[hpc]")
    (pytester.path / "conf" / "dist_strategy.yaml").rename(pytester.path / "conf" / "aomaker.yaml")
    result = run(pytester, "--mt")
    result.stdout.fnmatch_lines(["fleet: 2 units by mark (conf/aomaker.yaml): hpc_sw (1), hpc_fs (1)"])
    (pytester.path / "elsewhere.yaml").write_text(SEED_STRATEGY.format(target="['iaas.smoke']"))
    result = run(pytester, "--mt", "--dist-strategy", "elsewhere.yaml")
    result.stdout.fnmatch_lines(["fleet: 2 units by mark (elsewhere.yaml): iaas_image (1), iaas_volume (1)"])
    result = run(pytester, "--mt", "--dist-strategy", "missing.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "fleet: --dist-strategy missing.yaml: no such file" in result.stderr.str()


def test_project_hook_defines_units(pytester: pytest.Pytester) -> None:
    """Seed 003's custom scheduling: one unit per top-level directory."""
    directories(pytester)
    (pytester.path / "conftest.py").write_text(RECORDER + '''
def pytest_fleet_units(config, items):
    return {i: i.path.relative_to(config.rootpath).parts[0] for i in items}
''')
    result = run(pytester, "--mt", "8")
    assert outcomes(result) == {"passed": 15}
    workers = by_worker(ran(pytester))
    assert len(workers) == 2  # two top-level directories: suite, other
    units = sorted(len(tests) for tests in workers.values())
    assert units == [3, 12]
    # An explicit --dist-* option wins over the hook.
    (pytester.path / "ran.jsonl").unlink()
    result = run(pytester, "--mt", "8", "--dist-file", "suite")
    assert len(by_worker(ran(pytester))) == 4
