"""pytest-json-report: report.json of a parallel run holds each test's own logs, output and metadata."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_jsonreport")

PLUGINS = ("pytest-json-report", "pytest-metadata")

_MODULE = """
    import logging
    import time
    import pytest

    log = logging.getLogger(__name__)


    @pytest.mark.parametrize("n", range(2))
    def test_logs_and_prints(request, json_metadata, n):
        json_metadata["who"] = request.node.nodeid
        for i in range(3):
            log.info("from %s step %d", request.node.nodeid, i)
            print("stdout of", request.node.nodeid)
            time.sleep(0.02)


    def test_fails():
        time.sleep(0.03)
        assert 1 == 2


    @pytest.mark.skip(reason="not today")
    def test_skipped():
        pass


    @pytest.mark.xfail(reason="known bug")
    def test_xfail():
        raise ValueError("bug")
"""

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
        log_level = INFO
    """,
    "test_a.py": _MODULE,
    "test_b.py": _MODULE,
    "test_c.py": _MODULE,
}

ARGS = ("--json-report", "--json-report-file=report.json", "-ra")


def per_test(report: dict) -> dict[str, dict]:
    """What a test's entry says about that test, comparable between runs."""
    out = {}
    for t in report["tests"]:
        entry = {"outcome": t["outcome"], "metadata": t.get("metadata")}
        for phase in ("setup", "call", "teardown"):
            if phase in t:
                p = t[phase]
                entry[phase] = {
                    "outcome": p.get("outcome"),
                    "log": [(r.get("name"), r.get("levelname"), r.get("msg"), r.get("args")) for r in p.get("log", [])],
                    "stdout": p.get("stdout"),
                    "stderr": p.get("stderr"),
                }
        out[t["nodeid"]] = entry
    return out


@over_modes
def test_json_report(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, *ARGS)
    assert_counts(got, "3 failed, 6 passed, 3 skipped, 3 xfailed")
    assert got.ret == 1, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    assert got.lines(r"report saved to: ") == serial.lines(r"report saved to: ") != []
    report = json.loads(got.file("report.json").read_text())
    expected = json.loads(serial.file("report.json").read_text())
    assert sorted(report) == sorted(expected) == [
        "collectors", "created", "duration", "environment", "exitcode", "root", "summary", "tests"]
    assert report["summary"] == expected["summary"] == {
        "passed": 6, "failed": 3, "skipped": 3, "xfailed": 3, "total": 15, "collected": 15}
    assert report["exitcode"] == expected["exitcode"] == 1
    mine, theirs = per_test(report), per_test(expected)
    assert sorted(mine) == sorted(theirs)
    # Serial: each logging test's call.log holds exactly its own 3 records.
    for nodeid, entry in theirs.items():
        if "logs_and_prints" in nodeid:
            assert [record[2] for record in entry["call"]["log"]] == [f"from {nodeid} step {i}" for i in range(3)]
            assert entry["call"]["stdout"] == f"stdout of {nodeid}\n" * 3
            assert entry["metadata"] == {"who": nodeid}
    wrong = [nodeid for nodeid in theirs if mine[nodeid] != theirs[nodeid]]
    details = []
    for nodeid in wrong[:3]:
        for key in theirs[nodeid]:
            if mine[nodeid].get(key) != theirs[nodeid][key]:
                details.append(f"{nodeid} {key}: {str(mine[nodeid].get(key))[:300]} (serial {str(theirs[nodeid][key])[:300]})")
    assert not wrong, f"[{mode}] {len(wrong)} test entries of report.json differ from serial: " + "; ".join(details)
