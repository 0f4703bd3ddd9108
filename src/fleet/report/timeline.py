"""``--timeline FILE``: what each worker ran, and when.

``FILE.json`` is a Chrome trace (the JSON object format Perfetto and
chrome://tracing open): one process per worker process (per node, for
workers on a Ray cluster), one track (thread) per worker, a slice per test with its set-up/call/teardown and the fixtures
set up inside, and instant markers for crashes, timeouts and restarts.
``FILE.html`` is one self-contained page that draws the same trace as a
chart: the trace is embedded in it and drawn by a script in the page, so it
opens from disk with no network.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from fleet.report.monitor import RunMonitor

SUFFIXES = (".json", ".html")
_WORKER = re.compile(r"^([pr]\d+)(t\d+)?$")


def check_path(value: str) -> Path:
    """The ``--timeline`` value, or a usage error naming what is wrong with it.

    Checked at start-up, so a file that cannot be written is refused before
    any test runs rather than after all of them.
    """
    if not str(value).strip():
        raise pytest.UsageError(f"fleet: --timeline needs a file name, FILE.json or FILE.html, not {value!r}")
    path = Path(value)
    if path.suffix not in SUFFIXES:
        raise pytest.UsageError(
            f"fleet: --timeline writes FILE.json (a Chrome/Perfetto trace) or FILE.html, not {value!r}"
        )
    if path.is_dir():
        raise pytest.UsageError(f"fleet: --timeline {value}: is a directory; give a file name")
    parent = path.parent
    if not parent.exists() and str(parent):
        raise pytest.UsageError(f"fleet: --timeline {value}: directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise pytest.UsageError(f"fleet: --timeline {value}: {str(parent)!r} is not a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise pytest.UsageError(f"fleet: --timeline {value}: the file exists and cannot be written")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"fleet: --timeline {value}: cannot write in directory {str(parent)!r}")
    return path


def process_of(worker: str) -> str:
    """``p1t3`` -> ``p1``; thread workers (``t3``) share the controller's process."""
    match = _WORKER.match(worker)
    return match.group(1) if match else "threads"


def trace(monitor: RunMonitor) -> dict[str, Any]:
    begin = monitor.begin
    end = monitor.end or begin

    def us(at: float) -> int:
        return max(0, round((at - begin) * 1_000_000))

    workers = list(monitor.workers)
    for record in monitor.records.values():
        if record.worker not in workers:
            workers.append(record.worker)
    processes: dict[str, int] = {}
    tids = {}
    events: list[dict[str, Any]] = []
    for number, worker in enumerate(workers, start=1):
        process = monitor.hosts.get(worker) or process_of(worker)
        if process not in processes:
            processes[process] = len(processes) + 1
            events.append(_meta("process_name", processes[process], 0, process))
            events.append(_meta("process_sort_index", processes[process], 0, processes[process], "sort_index"))
        tids[worker] = (processes[process], number)
        events.append(_meta("thread_name", processes[process], number, worker))
        events.append(_meta("thread_sort_index", processes[process], number, number, "sort_index"))

    for record in sorted(monitor.records.values(), key=lambda r: r.start):
        pid, tid = tids[record.worker]
        events.append(_slice(record.nodeid, "test", pid, tid, us(record.start), us(record.stop),
                             {"outcome": record.outcome, "worker": record.worker}))
        for phase in (p for p in record.phases if p.start):
            events.append(_slice(phase.when, "phase", pid, tid, us(phase.start), us(phase.stop),
                                 {"outcome": phase.outcome}))
        for fixture in record.fixtures:
            events.append(_slice(f"fixture {fixture.argname}", "fixture", pid, tid, us(fixture.start),
                                 us(fixture.stop), {"scope": fixture.scope, "instance": fixture.instance}))
    for attempt in monitor.attempts:
        pid, tid = tids.get(attempt.worker, (0, 0))
        events.append(_slice(attempt.nodeid, "lost attempt", pid, tid, us(attempt.start), us(attempt.stop),
                             {"outcome": "lost", "reason": attempt.text}))
    for marker in monitor.markers:
        pid, tid = tids.get(marker.worker, (0, 0))
        events.append({"ph": "i", "s": "t", "name": marker.kind, "cat": "marker", "pid": pid, "tid": tid,
                       "ts": us(marker.at), "args": {"text": marker.text}})
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"generator": "fleet", "wall_seconds": round(end - begin, 6),
                      "tests": len(monitor.records), "workers": workers},
    }


def write(path: Path, monitor: RunMonitor) -> None:
    data = trace(monitor)
    if path.suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
        return
    page = resources.files("fleet.report").joinpath("timeline.html").read_text(encoding="utf-8")
    # inside <script>, "</" would end the element early
    embedded = json.dumps(data).replace("</", "<\\/")
    path.write_text(page.replace("/*TRACE*/null", embedded, 1), encoding="utf-8")


def _meta(name: str, pid: int, tid: int, value: Any, key: str = "name") -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "args": {key: value}}


def _slice(name: str, cat: str, pid: int, tid: int, start: int, stop: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": start,
            "dur": max(0, stop - start), "args": args}
