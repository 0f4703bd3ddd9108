"""Allure results in every mode, read back from the files and from the real Allure CLI.

Each parallel run is compared with a serial run of the same suite: the same
tests, each with exactly one result, the same status, steps, attachments
(its own output only) and fixture containers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import outcomes, run

pytest.importorskip("allure_pytest", reason="allure-pytest is in fleet's test extras")

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def db():
    yield "db"

@pytest.fixture(scope="module")
def client(db):
    yield "client"

@pytest.fixture
def broken():
    raise RuntimeError("set-up breaks")
"""

MODULE = """
import logging, time
import allure, pytest

log = logging.getLogger("suite")

@pytest.mark.parametrize("n", [1, 2, 3])
def test_pass_{m}(client, n):
    with allure.step(f"step {m} {{n}}"):
        print(f"out {m} {{n}}")
        log.warning(f"log {m} {{n}}")
        allure.attach(f"body {m} {{n}}", name="note")
        time.sleep(0.05)

def test_fail_{m}(client):
    print("failing {m}")
    assert 0, "boom {m}"

def test_error_{m}(broken):
    pass

def test_skip_{m}():
    pytest.skip("skip {m}")

@pytest.mark.xfail(reason="known {m}")
def test_xfail_{m}():
    assert 0
"""

MODES = {
    "threads": ("--mt", "4", "--group-unit", "function"),
    "processes": ("--mp", "2", "--group-unit", "function"),
    "processes x threads": ("--mp", "2", "--mt", "2", "--group-unit", "function"),
}


def allure_cli() -> str:
    found = os.environ.get("FLEET_ALLURE") or shutil.which("allure")
    local = ROOT / ".tools" / "node_modules" / ".bin" / "allure"
    if local.exists():
        found = str(local)
    if not found:
        pytest.fail("the Allure command line is missing: run scripts/install-report-tools")
    return found


def read_results(directory: Path) -> dict[str, list[dict]]:
    """Results by test (full name + parameters), each with its attachments' text
    and the fixtures of the containers it is a child of."""
    results = [json.loads(p.read_text()) for p in directory.glob("*-result.json")]
    containers = [json.loads(p.read_text()) for p in directory.glob("*-container.json")]
    by_uuid = {}
    by_test: dict[str, list[dict]] = {}
    for result in results:
        params = ",".join(f"{p['name']}={p['value']}" for p in result.get("parameters", []))
        key = f"{result['fullName']}[{params}]"
        attachments = {}

        def collect(node: dict) -> None:
            for attachment in node.get("attachments", []):
                attachments[attachment["name"]] = (directory / attachment["source"]).read_text()
            for step in node.get("steps", []):
                collect(step)

        collect(result)
        result["attachment_texts"] = attachments
        result["fixtures"] = set()
        by_uuid[result["uuid"]] = result
        by_test.setdefault(key, []).append(result)
    for container in containers:
        for child in container.get("children", []):
            if child in by_uuid:
                by_uuid[child]["fixtures"] |= {b["name"] for b in container.get("befores", [])}
    return by_test


def summary_of(result: dict) -> tuple:
    thread = [label["value"] for label in result["labels"] if label["name"] == "thread"]
    return (
        result["status"],
        [step["name"] for step in result.get("steps", [])],
        {k: v for k, v in result["attachment_texts"].items()},
        sorted(result["fixtures"]),
        thread[0] if thread else None,
    )


def allure_summary(pytester: pytest.Pytester, results: Path) -> dict[str, int]:
    report = pytester.path / f"{results.name}-report"
    subprocess.run(
        [allure_cli(), "generate", str(results), "-o", str(report), "--clean"],
        check=True, capture_output=True, timeout=180,
    )
    return json.loads((report / "widgets" / "summary.json").read_text())["statistic"]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    for m in "abc":
        pytester.makepyfile(**{f"test_{m}": MODULE.format(m=m)})
    return pytester


@pytest.mark.parametrize("mode", list(MODES))
def test_one_result_per_test_as_in_a_serial_run(suite: pytest.Pytester, mode: str) -> None:
    serial_run = run(suite, "--alluredir", "serial", "-p", "no:asyncio")
    parallel_run = run(suite, "--alluredir", "parallel", "-p", "no:asyncio", *MODES[mode])
    assert outcomes(parallel_run) == outcomes(serial_run) == {
        "passed": 9, "failed": 3, "error": 3, "skipped": 3, "xfailed": 3,
    }
    serial = read_results(suite.path / "serial")
    parallel = read_results(suite.path / "parallel")
    assert sorted(parallel) == sorted(serial) and len(parallel) == 21
    workers = set()
    for test, results in parallel.items():
        assert len(results) == 1, f"{test} has {len(results)} results"
        status, steps, attachments, fixtures, worker = summary_of(results[0])
        s_status, s_steps, s_attachments, s_fixtures, _ = summary_of(serial[test][0])
        assert (status, steps, fixtures) == (s_status, s_steps, s_fixtures), test
        assert attachments == s_attachments, test  # its own output and log only
        workers.add(worker)
    expected_workers = {"threads": {"t0", "t1", "t2", "t3"}, "processes": {"p0", "p1"},
                        "processes x threads": {"p0t0", "p0t1", "p1t0", "p1t1"}}[mode]
    assert workers <= expected_workers and len(workers) >= 2
    statuses = Counter(r[0]["status"] for r in parallel.values())
    assert statuses == {"passed": 9, "failed": 3, "broken": 3, "skipped": 6}
    assert allure_summary(suite, suite.path / "parallel") == {
        "failed": 3, "broken": 3, "skipped": 6, "passed": 9, "unknown": 0, "total": 21,
    }


CRASHING = """
import os, signal, time
import pytest

def test_slow_neighbour():
    time.sleep(0.4)

def test_kills_its_worker():
    time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGKILL)

@pytest.mark.test_timeout(0.5)
def test_hangs():
    time.sleep(30)

def test_fine():
    pass
"""


def test_crashes_timeouts_and_retries_in_allure(pytester: pytest.Pytester) -> None:
    """A crash while two tests ran on the worker's threads: both run again alone.
    The neighbour's lost attempt is an Allure retry of its passing result; the
    crashing test is broken (its lost attempt a retry too), the hanging one
    failed by its timeout; nothing half-written is left."""
    pytester.makepyfile(test_crash=CRASHING)
    result = run(pytester, "--alluredir", "out", "--mp", "1", "--mt", "2", "--group-unit", "function",
                 "-p", "no:asyncio")
    assert outcomes(result) == {"passed": 2, "failed": 2}
    results = read_results(pytester.path / "out")
    by_name = {key.split("#")[1].split("[")[0]: value for key, value in results.items()}
    neighbour = sorted(by_name["test_slow_neighbour"], key=lambda r: r["stop"])
    assert [r["status"] for r in neighbour] == ["broken", "passed"]
    assert "crashed" in neighbour[0]["statusDetails"]["message"]
    assert len({r["historyId"] for r in neighbour}) == 1
    crashing = sorted(by_name["test_kills_its_worker"], key=lambda r: r["stop"])
    assert [r["status"] for r in crashing] == ["broken", "broken"]
    assert "worker p0 crashed: signal 9 (SIGKILL)" in crashing[-1]["statusDetails"]["message"]
    (hangs,) = by_name["test_hangs"]
    assert hangs["status"] == "failed" and "Timeout" in hangs["statusDetails"]["message"]
    assert [r["status"] for r in by_name["test_fine"]] == ["passed"]
    for path in (pytester.path / "out").iterdir():  # every file is whole JSON or an attachment
        if path.name.endswith(".json"):
            json.loads(path.read_text())
    # Allure counts each test once, its latest result; the lost attempts are retries
    assert allure_summary(pytester, pytester.path / "out") == {
        "failed": 1, "broken": 1, "skipped": 0, "passed": 2, "unknown": 0, "total": 4,
    }
    cases = [json.loads(p.read_text()) for p in (pytester.path / "out-report/data/test-cases").glob("*.json")]
    retried = {c["name"]: c["retriesCount"] for c in cases if c.get("retriesCount")}
    assert retried == {"test_slow_neighbour": 1, "test_kills_its_worker": 1}


def test_clean_alluredir_is_not_repeated_by_spawned_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\ndef test_two(): pass\n")
    (pytester.path / "out").mkdir()
    (pytester.path / "out" / "stale-result.json").write_text("{}")
    env = {"FLEET_START_METHOD": "spawn"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        result = run(pytester, "--alluredir", "out", "--clean-alluredir", "--mp", "2", "-p", "no:asyncio")
    assert outcomes(result) == {"passed": 2}
    names = [p.name for p in (pytester.path / "out").glob("*-result.json")]
    assert len(names) == 2 and "stale-result.json" not in names
