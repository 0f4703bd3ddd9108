"""What a lost worker process means: which test to blame, and what runs again.

A worker that dies (a signal, a segfault, ``os._exit``, a timeout kill) had
some tests handed to it. :func:`judge` decides, from what the controller
knows of the worker, what becomes of each of them:

* killed after a timeout: that test fails as timed out, with where it was;
* one test running: it fails with the cause (``worker p1 crashed: signal 9
  (SIGKILL) while running test_x.py::test_y``; on a Ray node ``worker r3 on
  node 10.0.0.2 lost: node died while running test_x.py::test_y``);
* several running (threads in the worker): the one setting up a session
  fixture is blamed if there is one; otherwise none is blamed yet, each runs
  again alone (isolated), and only the one that dies alone is reported;
* the rest, handed out but not started, go to other workers.

The controller applies the verdict and decides whether to replace the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from fleet.execute.processes.dispatch import Worker
from fleet.execute.timeouts import describe as describe_timeout
from fleet.plan.groups import Plan


@dataclass
class Verdict:
    # (test index, worker thread, text, kind: "crash" or "timeout")
    failures: list[tuple[int, str, str, str]] = field(default_factory=list)
    # (test index, worker thread, text): attempts lost in the crash, run again alone
    lost_attempts: list[tuple[int, str, str]] = field(default_factory=list)
    isolate: list[int] = field(default_factory=list)
    requeue: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # (worker thread, kind, text) for the run's record
    markers: list[tuple[str, str, str]] = field(default_factory=list)


def judge(
    worker: Worker,
    cause: str,
    threads: int,
    plan: Plan,
    thread_running: Callable[[str, int], str],
) -> Verdict:
    """``thread_running(process, index)``: the worker thread that was running test ``index``."""
    verdict = Verdict()
    unfinished = worker.unfinished()
    if worker.timed_out is not None:
        index, _, seconds, stack, message = worker.timed_out
        name = thread_running(worker.name, index)
        text = f"{message or describe_timeout(seconds)}; worker {worker.label} was killed and replaced"
        verdict.markers.append((name, "timeout", f"{plan.items[index].nodeid}: {text}"))
        if stack:
            text += f"\n\nWhere it was:\n{stack}"
        verdict.failures.append((index, name, text, "timeout"))
        verdict.requeue = [i for i in unfinished if i != index]
        return verdict
    if worker.shutting_down and not unfinished:
        return verdict  # after its last test: the controller puts it on that test's teardown
    suspects = [chain[0] for chain in list(worker.chains.values())[:threads]]
    if worker.alone is not None:
        suspects = [worker.alone]
    making = [i for i in suspects if thread_running(worker.name, i) in worker.making]
    if len(suspects) > 1 and len(making) == 1:
        suspects = making  # it died setting up a session fixture there
    if len(suspects) == 1:
        index = suspects[0]
        name = thread_running(worker.name, index)
        making = worker.making.get(name)
        doing = f"setting up the session fixture {making} for" if making else "running"
        text = f"worker {worker.label} {worker.process.how}: {cause} while {doing} {plan.items[index].nodeid}"
        verdict.markers.append((name, "crash", text))
        verdict.failures.append((index, name, text, "crash"))
    elif suspects:
        for index in suspects:
            verdict.lost_attempts.append((
                index,
                thread_running(worker.name, index),
                f"worker {worker.label} {worker.process.how} ({cause}) while it ran this test and "
                f"{len(suspects) - 1} more on threads; it runs again alone",
            ))
        verdict.isolate = list(suspects)
        verdict.notes.append(
            f"worker {worker.label} {worker.process.how} ({cause}) running {len(suspects)} tests "
            "on threads; each ran again alone to find the one that crashed"
        )
    verdict.requeue = [i for i in unfinished if i not in suspects]
    return verdict
