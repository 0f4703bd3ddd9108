"""Handing out work to worker processes: chains, reserves, giving back, closing scopes.

The controller hands out *chains* from the scheduler: a group's remaining
tests in order (one round trip for the whole group, its order kept inside the
worker), or a batch of free tests sized to the work left (by expected time
when durations are remembered). Each worker holds
one chain per thread plus a reserve (:data:`RESERVE`; a remote worker,
whose round trip is a network's, one more per thread). A worker with nothing to do while
another holds tests it has not started gets some of them: the other is asked
to give back its reserve and half of its free tests; a group is never split.

A worker cannot know whether more tests of a module will come, so each test
goes out with the depths of its ancestors (module, class, package) under
which no test is left to hand out: the worker tears those down after it, as
a serial run would (see :class:`fleet.state.setupstate.SharedSetupState`).

Tests that were running where a worker crashed with several threads are
*isolated*: each runs again alone on a worker with nothing else to do, so
the one that crashes alone is the one blamed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from fleet.plan.groups import Plan
from fleet.plan.schedule import Scheduler

# Chains a worker holds beyond one per thread, so no thread waits for a round trip.
RESERVE = 1
# Free tests (in no group) per chain, at most.
MAX_FREE_CHAIN = 32
# With durations remembered: a worker whose chains are expected to keep it
# busy longer than this gets no reserve. A reserve saves a round trip (a
# millisecond); held behind a long test it is work another worker could start
# now, and the longest-first order would be lost.
RESERVE_UNTIL_S = 0.5


@dataclass
class Worker:
    """What the controller knows of one worker process."""

    name: str
    process: Any  # its handle: kill(), reap()
    conn: Any
    # chain number -> its tests not yet finished, in order
    chains: dict[int, list[int]] = field(default_factory=dict)
    affinity: Hashable | None = None
    alone: int | None = None  # the one test it runs, to find out whether it crashes
    asked_back: bool = False
    may_give_back: bool = True
    # (test, worker thread, seconds, where it was, its failure's text or "")
    timed_out: tuple[int, str, float, str, str] | None = None
    bye: bool = False
    shutting_down: bool = False
    # worker thread -> the session fixture it is setting up
    making: dict[str, str] = field(default_factory=dict)
    # its latest test's result, logged once it is known whether more follow:
    # the worker's own end may add to that test's teardown
    last: tuple[int, str, list[Any]] | None = None
    ready: bool = True  # it may be given work (a remote worker: once it has collected)
    where: str = ""  # where it runs, when that is not here: " on node 10.0.0.2"

    @property
    def label(self) -> str:
        """How messages name it: ``p1``, ``r3 on node 10.0.0.2``."""
        return self.name + self.where

    def unfinished(self) -> list[int]:
        return [index for chain in self.chains.values() for index in chain]

    def unstarted(self, threads: int) -> int:
        return sum(len(c) for c in self.chains.values()) - min(len(self.chains), threads)

    def held_seconds(self, expected: list[float]) -> float:
        return sum(expected[i] for chain in self.chains.values() for i in chain)

    def unstarted_seconds(self, threads: int, expected: list[float]) -> float:
        """Expected seconds of its tests but the first of each of its first
        ``threads`` chains (those may be running)."""
        chains = list(self.chains.values())
        return sum(expected[i] for n, chain in enumerate(chains) for i in chain[1 if n < threads else 0:])

    def finished(self, index: int, affinity: Hashable) -> None:
        for number, chain in self.chains.items():
            if index in chain:
                chain.remove(index)
                if not chain:
                    del self.chains[number]
                break
        if self.alone == index:
            self.alone = None
        self.affinity = affinity

    def forget(self, indices: list[int]) -> None:
        """Tests it gave back."""
        returned = set(indices)
        for number in list(self.chains):
            self.chains[number] = [i for i in self.chains[number] if i not in returned]
            if not self.chains[number]:
                del self.chains[number]


Send = Callable[[Worker, tuple[Any, ...]], None]


class Dispatcher:
    def __init__(self, plan: Plan, scheduler: Scheduler, threads: int, send: Send, reserve: int = RESERVE) -> None:
        self.plan = plan
        self.scheduler = scheduler
        self.threads = threads
        self.reserve = reserve
        self._send = send
        self._chain_numbers = 0
        # node -> its tests not yet handed out
        self._undispatched: Counter[Any] = Counter()
        for item in plan.items:
            for node in item.listchain()[1:-1]:
                self._undispatched[node] += 1
        # tests to run again alone, to find out which one crashes
        self.isolate: list[int] = []
        # tests to run again alone once everything else has run (a failure
        # beside a test caught changing process-wide state), and those running so
        self.at_end: list[int] = []
        self.rerunning: set[int] = set()

    def dispatch(self, workers: list[Worker]) -> None:
        """Give each worker that has room a chain, one per worker per round."""
        workers = sorted(workers, key=lambda w: len(w.chains))
        for worker in workers:
            if self.isolate and worker.alone is None and not worker.chains:
                index = self.isolate.pop(0)
                worker.alone = index
                self._send_chain(worker, [index], alone=True)
        if self.isolate:
            return
        open_workers = [w for w in workers if w.alone is None]
        while open_workers:
            for worker in list(open_workers):
                chain = []
                if self._has_room(worker):
                    chain = self.scheduler.take_chain(
                        worker.affinity, self._free_chain_length(len(workers)), self._free_chain_seconds(len(workers))
                    )
                if chain:
                    self._send_chain(worker, chain)
                else:
                    open_workers.remove(worker)
        if any(len(w.chains) < self.threads for w in workers if w.alone is None):
            self._ask_back(workers)
        if self.at_end and self.scheduler.remaining == 0:
            for worker in workers:
                if self.at_end and worker.alone is None and not worker.chains:
                    index = self.at_end.pop(0)
                    worker.alone = index
                    self.rerunning.add(index)
                    self._send_chain(worker, [index], alone=True)

    def _has_room(self, worker: Worker) -> bool:
        """Room for a chain: one per thread, and the reserve (with durations
        known, only while what it holds is short: :data:`RESERVE_UNTIL_S`)."""
        held = len(worker.chains)
        if held < self.threads:
            return True
        if held >= self.threads + self.reserve:
            return False
        return self.plan.expected is None or worker.held_seconds(self.plan.expected) < RESERVE_UNTIL_S

    def _free_chain_length(self, workers: int) -> int:
        slots = max(1, workers) * self.threads
        return max(1, min(MAX_FREE_CHAIN, self.scheduler.remaining // (slots * 4)))

    def _free_chain_seconds(self, workers: int) -> float | None:
        """With history: a quarter of each thread's share of the work not yet
        handed out, so batches shrink towards the end and workers finish together."""
        unstarted = self.scheduler.unstarted_seconds
        if unstarted is None:
            return None
        return unstarted / (max(1, workers) * self.threads * 4)

    def _send_chain(self, worker: Worker, chain: list[int], alone: bool = False) -> None:
        entries = []
        for index in chain:
            closing = []
            for depth, node in enumerate(self.plan.items[index].listchain()[1:-1], start=1):
                if alone:
                    closing.append(depth)
                    continue
                self._undispatched[node] -= 1
                if self._undispatched[node] == 0:
                    closing.append(depth)
            entries.append((index, tuple(closing)))
        self._chain_numbers += 1
        worker.chains[self._chain_numbers] = list(chain)
        worker.may_give_back = True
        self._send(worker, ("run", entries))

    def _ask_back(self, workers: list[Worker]) -> None:
        victims = [
            w for w in workers
            if not w.asked_back and w.may_give_back and w.alone is None and w.unstarted(self.threads) > 1
        ]
        if victims:
            expected = self.plan.expected
            if expected is None:
                victim = max(victims, key=lambda w: w.unstarted(self.threads))
            else:  # the one with the most expected work not started
                victim = max(victims, key=lambda w: w.unstarted_seconds(self.threads, expected))
            victim.asked_back = True
            self._send(victim, ("give back",))

    def returned(self, worker: Worker, indices: list[int]) -> None:
        """A worker gave back tests it had not started (none: it has nothing to give)."""
        worker.asked_back = False
        if not indices:
            worker.may_give_back = False
            return
        worker.forget(indices)
        self.requeue(indices)

    def requeue(self, indices: list[int]) -> None:
        """Tests handed out and never run: they go out again."""
        for index in indices:
            for node in self.plan.items[index].listchain()[1:-1]:
                self._undispatched[node] += 1
        if indices:
            self.scheduler.give_back(indices)
