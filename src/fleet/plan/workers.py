"""How many workers a run gets, from what was asked and how many groups can run."""

from __future__ import annotations

import os

# Threads for ``--mt auto``: one per group that can run, up to this many.
AUTO_THREADS_CAP = 64


def cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_count(requested: int | str, runnable_groups: int) -> int:
    """Threads in one process: ``--mt N`` or ``auto``, never more than can run."""
    if requested == "auto":
        return max(1, min(runnable_groups, AUTO_THREADS_CAP))
    assert isinstance(requested, int)
    return max(1, min(requested, runnable_groups))


def process_layout(processes: int | str, threads: int | str | None, runnable_groups: int) -> tuple[int, int]:
    """(processes, threads in each) for ``--mp`` [``--mt``]."""
    wanted = cpu_count() if processes == "auto" else int(processes or 1)
    count = max(1, min(wanted, runnable_groups))
    if threads is None:
        return count, 1
    if threads == "auto":
        per_process = -(-runnable_groups // count)
        return count, max(1, min(per_process, AUTO_THREADS_CAP))
    assert isinstance(threads, int)
    return count, threads
