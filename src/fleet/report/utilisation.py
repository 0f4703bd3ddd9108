"""The short section at the end of a parallel run: how well the workers were used.

Workers used, each one's busy share of the run's wall time, the idle tail
(from the first worker running out of work to the end: the time a better
division would win back), the slowest tests, and the fixtures that were set
up more than once for one scope instance, with why. A run in which no test
ran has nothing to say here; a stopped run, or one on a single worker, has
no idle tail. Where the ``--timeline`` file is, when one was written; when
the idle tail is large and none was, how to get one. When tests on threads
kept one CPU busy (they compute; one GIL runs their Python one at a time)
and the machine has more, that worker processes would use them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from fleet.plan.workers import cpu_count
from fleet.report.monitor import RunMonitor
from fleet.report.timeline import process_of

SLOWEST = 3
# Beyond this many workers the busy shares are summarised, not listed.
LISTED_WORKERS = 16
# An idle tail this long, and this share of the wall time, is worth a look at the timeline.
IDLE_WORTH_A_LOOK = 1.0
IDLE_SHARE_WORTH_A_LOOK = 0.2
# A threads run whose process used at least this share of one CPU for this
# long was bound by the GIL; past ONE_CPU_AT_MOST its threads ran side by side
# (C code that releases the GIL), and threads helped.
GIL_BOUND_SHARE = 0.8
ONE_CPU_AT_MOST = 1.3
GIL_BOUND_AFTER = 1.0  # seconds


def summary(monitor: RunMonitor, per_process: dict[str, str], timeline: Path | None = None) -> list[str]:
    """``per_process``: session fixtures made once per process, and why;
    ``timeline``: the ``--timeline`` file written, if any."""
    if not monitor.records:
        return []  # nothing ran (all deselected, or stopped before the first test)
    begin, end = monitor.begin, monitor.end or monitor.begin
    wall = max(end - begin, 1e-9)
    records = list(monitor.records.values())
    busy: dict[str, float] = {w: 0.0 for w in monitor.workers}
    last_stop: dict[str, float] = {}
    for record in records:
        if record.worker == "-":
            continue  # never ran: every worker had crashed
        busy[record.worker] = busy.get(record.worker, 0.0) + (record.stop - record.start) + record.earlier
        last_stop[record.worker] = max(last_stop.get(record.worker, begin), record.stop)
    _add_cut_short(monitor, busy)
    used = [w for w in busy if busy[w] > 0]
    lines = [f"workers: {len(used)} of {len(busy)} ran tests, wall time {wall:.2f}s"]
    if not used:
        return lines + _where_the_timeline_is(timeline)
    shares = {w: busy[w] / wall for w in used}
    if len(shares) <= LISTED_WORKERS:
        lines.append("busy: " + "  ".join(f"{w} {share:.0%}" for w, share in shares.items()))
    else:
        ordered = sorted(shares.items(), key=lambda kv: kv[1])
        lines.append(
            f"busy: median {statistics.median(shares.values()):.0%}, "
            f"least {ordered[0][0]} {ordered[0][1]:.0%}, most {ordered[-1][0]} {ordered[-1][1]:.0%}"
        )
    # a stopped run's workers did not run out of work; a lone worker has nobody to wait for
    if monitor.interruption is None and len(used) > 1:
        lines.append(_idle_tail(end, wall, last_stop, timeline))
    slowest = sorted(records, key=lambda r: r.stop - r.start, reverse=True)[:SLOWEST]
    lines.append("slowest: " + "; ".join(f"{r.stop - r.start:.2f}s {r.nodeid} [{r.worker}]" for r in slowest))
    lines += _repeated_fixtures(monitor, per_process)
    lines += _one_cpu(monitor, len(used))
    return lines + _where_the_timeline_is(timeline)


def _one_cpu(monitor: RunMonitor, threads: int) -> list[str]:
    if monitor.cpu is None or threads < 2 or cpu_count() < 2:
        return []
    cpu, wall = monitor.cpu
    share = cpu / wall if wall > 0 else 0.0
    if wall < GIL_BOUND_AFTER or not GIL_BOUND_SHARE <= share <= ONE_CPU_AT_MOST:
        return []
    return [
        f"cpu: the tests kept one CPU {min(share, 1.0):.0%} busy: threads share one GIL, so tests that "
        "compute run one at a time; worker processes (--mp) would use the other CPUs"
    ]


def _add_cut_short(monitor: RunMonitor, busy: dict[str, float]) -> None:
    """A test an interrupt cut short kept its worker busy until then."""
    interruption = monitor.interruption
    if interruption is None:
        return
    for worker, (nodeid, since) in interruption.running.items():
        record = monitor.records.get(nodeid)
        if record is None or not record.outcome:
            counted_to = record.stop if record is not None and record.phases else since
            busy[worker] = busy.get(worker, 0.0) + max(0.0, interruption.at - counted_to)


def _idle_tail(end: float, wall: float, last_stop: dict[str, float], timeline: Path | None) -> str:
    idle_worker = min(last_stop, key=last_stop.__getitem__)
    tail = max(0.0, end - last_stop[idle_worker])
    line = f"idle tail: {tail:.2f}s ({idle_worker} ran out of work {tail:.2f}s before the end"
    if tail >= IDLE_WORTH_A_LOOK and tail >= IDLE_SHARE_WORTH_A_LOOK * wall:
        line += "; the timeline shows why" if timeline is not None else "; --timeline run.html shows why"
    return line + ")"


def _where_the_timeline_is(timeline: Path | None) -> list[str]:
    if timeline is None:
        return []
    if timeline.suffix == ".html":
        return [f"timeline: {timeline} (open it in a browser)"]
    return [f"timeline: {timeline} (a Chrome trace: open it in https://ui.perfetto.dev or chrome://tracing)"]


def _repeated_fixtures(monitor: RunMonitor, per_process: dict[str, str]) -> list[str]:
    runs: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    plugins: dict[str, set[str]] = defaultdict(set)  # plugin session fixture -> processes
    for record in monitor.records.values():
        for fixture in record.fixtures:
            if not fixture.project:
                if fixture.scope == "session":
                    plugins[fixture.argname].add(process_of(record.worker))
                continue
            if fixture.scope != "function" and fixture.argname not in per_process:
                runs[(fixture.argname, fixture.scope, fixture.instance, fixture.defined)].append(record.worker)
    lines = [f"  {name} (session): once per worker process: {why}" for name, why in sorted(per_process.items())]
    for (name, scope, instance, _), workers in sorted(runs.items()):
        if len(workers) < 2:
            continue
        processes = sorted({process_of(w) for w in workers})
        place = f" {instance.rsplit('[', 1)[0]}" if scope != "session" else ""
        if len(processes) > 1:
            why = f"its tests ran in {len(processes)} worker processes ({', '.join(processes)})"
        elif len(set(workers)) > 1:
            why = f"each of {', '.join(sorted(set(workers)))} needed its own (it depends on worker_id)"
        else:
            why = f"its tests did not run back to back on {workers[0]}, so it was torn down in between"
        lines.append(f"  {name} ({scope}{place}): {len(workers)} times: {why}")
    shared = sorted(name for name, processes in plugins.items() if len(processes) > 1)
    if shared:
        lines.append(
            f"  plugins' session fixtures, once per worker process (as under pytest-xdist): {', '.join(shared)}"
        )
    if lines:
        lines.insert(0, "fixtures set up more than once per scope:")
    return lines
