"""--timeline (the Chrome trace and the page, drawn by a real Chromium) and the
utilisation summary at the end of every parallel run."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import outcomes, run

SUITE = """
import json, os, time
import pytest

@pytest.fixture(scope="module")
def slow_resource():
    time.sleep(0.05)
    yield "resource"

@pytest.fixture(autouse=True)
def _where(request, worker_id):
    yield
    with open(os.path.join(os.path.dirname(__file__), "ran.jsonl"), "a") as f:
        f.write(json.dumps({{"nodeid": request.node.nodeid, "worker": worker_id}}) + "\\n")

@pytest.mark.parametrize("n", range(4))
def test_uses_resource_{m}(slow_resource, n):
    time.sleep(0.02)

def test_fails_{m}():
    assert 0

def test_skips_{m}():
    pytest.skip("no")
"""

MODES = {
    "threads": ("--mt", "3", "--group-unit", "function"),
    "processes x threads": ("--mp", "2", "--mt", "2", "--group-unit", "function"),
}


def ran_on(path: Path) -> dict[str, str]:
    return {e["nodeid"]: e["worker"] for e in map(json.loads, path.read_text().splitlines())}


def slices_by_worker(trace: dict) -> tuple[dict[str, list[dict]], dict[tuple[int, int], str]]:
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    tests: dict[str, list[dict]] = defaultdict(list)
    for event in trace["traceEvents"]:
        if event["ph"] == "X" and event["cat"] == "test":
            tests[names[(event["pid"], event["tid"])]].append(event)
    return tests, names


@pytest.mark.parametrize("mode", list(MODES))
def test_trace_has_one_slice_per_test_on_its_worker(pytester: pytest.Pytester, mode: str) -> None:
    for m in "ab":
        pytester.makepyfile(**{f"test_{m}": SUITE.format(m=m)})
    result = run(pytester, "--timeline", "run.json", "-p", "no:asyncio", *MODES[mode])
    assert outcomes(result) == {"passed": 8, "failed": 2, "skipped": 2}
    trace = json.loads((pytester.path / "run.json").read_text())
    tests, names = slices_by_worker(trace)
    where = ran_on(pytester.path / "ran.jsonl")
    seen = [e["name"] for events in tests.values() for e in events]
    assert sorted(seen) == sorted(where) and len(seen) == 12  # one slice per test
    for worker, events in tests.items():
        for event in events:
            assert where[event["name"]] == worker == event["args"]["worker"]
        events.sort(key=lambda e: e["ts"])
        for before, after in zip(events, events[1:]):
            assert before["ts"] + before["dur"] <= after["ts"], f"{worker}: slices overlap"
    outcomes_in_trace = {e["name"].split("::")[1]: e["args"]["outcome"] for ev in tests.values() for e in ev}
    assert outcomes_in_trace["test_fails_a"] == "failed" and outcomes_in_trace["test_skips_b"] == "skipped"
    by_slice = defaultdict(list)
    for event in trace["traceEvents"]:
        if event["ph"] == "X" and event["cat"] in ("phase", "fixture"):
            by_slice[(event["pid"], event["tid"])].append(event)
    # set-up/call/teardown inside each test's slice; the module fixture set up once per module
    phases = [e for events in by_slice.values() for e in events if e["cat"] == "phase"]
    assert sorted({e["name"] for e in phases}) == ["call", "setup", "teardown"]
    fixtures = [e for events in by_slice.values() for e in events if e["name"] == "fixture slow_resource"]
    assert {e["args"]["instance"] for e in fixtures} == {"test_a.py[0]", "test_b.py[0]"}
    section = result.stdout.str().split("fleet ---")[1]
    for heading in ("workers: ", "busy: ", "idle tail: ", "slowest: "):
        assert heading in section


def test_trace_marks_crashes_and_restarts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash="""
        import os, signal
        def test_before(): pass
        def test_kill(): os.kill(os.getpid(), signal.SIGKILL)
        def test_after(): pass
    """)
    result = run(pytester, "--timeline", "run.json", "--mp", "1", "-p", "no:asyncio")
    assert outcomes(result) == {"passed": 2, "failed": 1}
    trace = json.loads((pytester.path / "run.json").read_text())
    markers = [(e["name"], e["args"]["text"]) for e in trace["traceEvents"] if e["ph"] == "i"]
    assert [kind for kind, _ in markers] == ["crash", "restart"]
    assert "test_kill" in markers[0][1]
    tests, _ = slices_by_worker(trace)
    assert sorted(e["name"].split("::")[1] for e in tests["p0"]) == ["test_after", "test_before", "test_kill"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is missing: run scripts/install-report-tools")
    return found


def browser(page: Path, *action: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=3000", "--window-size=1200,500",
         *action, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )


def test_timeline_page_renders_every_worker_and_test_in_a_browser(pytester: pytest.Pytester) -> None:
    for m in "ab":
        pytester.makepyfile(**{f"test_{m}": SUITE.format(m=m)})
    result = run(pytester, "--timeline", "run.html", "-p", "no:asyncio", *MODES["processes x threads"])
    assert outcomes(result) == {"passed": 8, "failed": 2, "skipped": 2}
    page = pytester.path / "run.html"
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    where = ran_on(pytester.path / "ran.jsonl")
    dom = browser(page, "--dump-dom", tmp=pytester.path).stdout
    assert 'data-rendered="true"' in dom
    for worker in set(where.values()):
        assert f'class="worker" data-worker="{worker}"' in dom
    for nodeid, worker in where.items():
        assert f'data-nodeid="{nodeid}" data-outcome=' in dom
    assert f'data-tests="{len(where)}"' in dom

    shot = pytester.path / "shot.png"
    browser(page, f"--screenshot={shot}", tmp=pytester.path)
    image = pytest.importorskip("PIL.Image").open(shot).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert (0x2E, 0x9D, 0x4F) in colours  # passed tests drawn
    assert (0xD3, 0x3A, 0x2C) in colours  # failed tests drawn


def test_summary_names_fixtures_that_ran_more_than_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_split="""
        import time, pytest
        @pytest.fixture(scope="module")
        def shared():
            return 1
        @pytest.mark.parametrize("n", range(6))
        def test_n(shared, n):
            time.sleep(0.1)
    """)
    result = run(pytester, "--mp", "2", "--group-unit", "function", "-p", "no:asyncio")
    assert outcomes(result) == {"passed": 6}
    result.stdout.fnmatch_lines([
        "*fixtures set up more than once per scope:",
        "*shared (module test_split.py): 2 times: its tests ran in 2 worker processes (p0, p1)",
    ])


@pytest.mark.parametrize("mode", [["--mt", "2"], ["--mp", "1"]], ids=["mt2", "mp1"])
def test_a_test_that_mocks_the_clock_does_not_skew_the_summary(pytester: pytest.Pytester, mode: list[str]) -> None:
    # as pytest's own mock_timing fixture does, late in a run
    pytester.makepyfile(test_clock="""
        import time
        from _pytest import timing

        def test_first_takes_a_while():
            time.sleep(0.5)

        def test_mocked_clock(monkeypatch):
            monkeypatch.setattr(timing, "time", lambda: 1590150050.0)
            monkeypatch.setattr(timing, "perf_counter", lambda: 1590150050.0)
        """)
    result = run(pytester, *mode, "-p", "no:asyncio", "-p", "no:randomly")
    assert outcomes(result) == {"passed": 2}
    busy = next(line for line in result.stdout.lines if line.startswith("busy:"))
    shares = [int(word.rstrip("%")) for word in busy.split()[1:] if word.endswith("%")]
    assert shares and max(shares) <= 100, busy
    slowest = next(line for line in result.stdout.lines if line.startswith("slowest:"))
    assert slowest.startswith("slowest: 0.5") and "test_first_takes_a_while" in slowest.split(";")[0], slowest


def test_two_fixtures_sharing_a_name_are_not_counted_as_one(pytester: pytest.Pytester) -> None:
    for name in ("a", "b"):
        pytester.makepyfile(**{f"test_{name}": """
            import pytest
            @pytest.fixture(scope="session")
            def res():
                return object()
            def test_uses(res):
                pass
            """})
    result = run(pytester, "--mt", "2", "-p", "no:asyncio")
    assert outcomes(result) == {"passed": 2}
    assert "more than once" not in result.stdout.str()


@pytest.mark.parametrize("args, message", [
    (("--timeline", "out.txt"), "fleet: --timeline writes FILE.json (a Chrome/Perfetto trace) or FILE.html, not 'out.txt'"),
    (("--timeline", "missing/out.json"), "fleet: --timeline missing/out.json: directory 'missing' does not exist"),
    (("--slow-after", "0"), "fleet: --slow-after takes a number of seconds above 0, not 0"),
])
def test_bad_report_options_are_one_line(pytester: pytest.Pytester, args: tuple[str, ...], message: str) -> None:
    pytester.makepyfile(test_a="def test_a(): pass")
    result = run(pytester, "--mt", "2", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().strip().splitlines() == [f"ERROR: {message}"]
