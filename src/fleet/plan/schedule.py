"""Schedule: hand out the tests of a plan to workers, keeping group order.

A test is *ready* when it is the earliest unfinished test of every group it
belongs to. Which ready test a worker gets:

1. the next one from the group (else module) the worker is already in, so a
   group runs on one worker and a module's fixtures stay warm;
2. else the first one (in collection order) from a group or module no worker
   is in, so that N workers open N modules and set up their fixtures side by
   side, instead of all queueing behind the first module's set-up;
3. else the first ready test.

Exclusive tests wait until nothing else runs, and while one runs nothing else
starts; they are taken only when no ordinary test is ready, so they cost as
little concurrency as possible. Between processes (``exclusive_within_process``)
that is the worker process's business, and here they are ordinary tests.

With durations remembered from earlier runs (``plan.expected``), "first"
means *longest first* (LPT) instead of first in collection order: a group
counts as its remaining expected time, a free test as its own, so the group
or test that would otherwise finish last starts first; and batches of free
tests are sized by expected time, shrinking as the work left shrinks, so
workers finish together. Without history nothing changes.

Worker threads call :meth:`Scheduler.next`, which blocks. The process
controller calls :meth:`Scheduler.take_chain`, which does not: it hands out a
*chain*, tests that one worker thread runs one after another, so a group's
order holds inside the worker without a round trip per test.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from typing import Hashable

from fleet.plan.groups import Plan


class Scheduler:
    def __init__(self, plan: Plan, exclusive_within_process: bool = False) -> None:
        self._plan = plan
        self._exclusive_global = not exclusive_within_process
        self._heads = {key: 0 for key in plan.groups}
        # Heaps hold ranks: a test's place in the order tests are preferred in
        # (collection order, or longest first with history); _by_rank maps back.
        self._rank, self._by_rank = _ranks(plan)
        self._lpt = plan.expected is not None
        self._expected = plan.expected or [0.0] * len(plan.items)
        self._unstarted_seconds = sum(self._expected)
        # affinity key -> heap of the ranks of its ready, ordinary tests
        self._ready: dict[Hashable, list[int]] = {}
        self._ready_exclusive: list[int] = []
        self._queued = [False] * len(plan.items)
        self._occupied: Counter[Hashable] = Counter()
        self._remaining = len(plan.items)
        self._running = 0
        self._exclusive_running = False
        self._stopped = False
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        # worker threads waiting in next(), told to an exclusive test's thread
        self._parked = 0
        self._quiet = threading.Condition(lock)
        for index in range(len(plan.items)):
            if self._is_ready(index):
                self._push(index)

    # -- queries made under the lock -----------------------------------------

    def _is_ready(self, index: int) -> bool:
        plan = self._plan
        return all(
            plan.groups[key][self._heads[key]] == index for key in plan.memberships[index]
        )

    def _push(self, index: int) -> None:
        self._queued[index] = True
        if self._exclusive_global and self._plan.exclusive[index]:
            heapq.heappush(self._ready_exclusive, self._rank[index])
        else:
            heapq.heappush(self._ready.setdefault(self._plan.affinity[index], []), self._rank[index])

    def _pick(self, affinity: Hashable | None) -> int | None:
        if affinity in self._ready:
            module = affinity
        elif not self._ready:
            return None
        elif self._lpt:  # the longest work left, wherever it is
            module = min(self._ready, key=lambda m: self._ready[m][0])
        else:
            module = min(
                self._ready, key=lambda m: (self._occupied[m] > 0, self._ready[m][0])
            )
        heap = self._ready[module]
        index = self._by_rank[heapq.heappop(heap)]
        if not heap:
            del self._ready[module]
        return index

    # -- the worker interface -------------------------------------------------

    def next(self, affinity: Hashable | None = None, finished: int | None = None) -> int | None:
        """Block until a test may start and return its index; None when done.

        ``affinity`` is the affinity key of the test this worker ran last, and
        ``finished`` that test itself if not yet marked done (one lock
        acquisition instead of two per test).
        """
        with self._cond:
            if finished is not None:
                self._done(finished, taking_one=True)
            while True:
                if self._stopped or self._remaining == 0:
                    return None
                if not self._exclusive_running:
                    index = self._pick(affinity)
                    if index is not None:
                        return self._start(index)
                    if self._ready_exclusive and self._running == 0:
                        self._exclusive_running = True
                        return self._start(self._by_rank[heapq.heappop(self._ready_exclusive)])
                self._parked += 1
                self._quiet.notify_all()
                try:
                    self._cond.wait()
                finally:
                    self._parked -= 1

    def until_parked(self, others: int, timeout: float) -> None:
        """Wait (at most ``timeout``) until ``others`` worker threads wait for
        work: an exclusive test then runs in a quiet process, with no other
        thread running Python code (a leak test counting ``gc.get_objects()``
        saw the scheduler's own objects on threads just woken)."""
        with self._quiet:
            self._quiet.wait_for(lambda: self._parked >= others, timeout)

    def _start(self, index: int) -> int:
        self._running += 1
        self._occupied[self._plan.affinity[index]] += 1
        self._unstarted_seconds -= self._expected[index]
        return index

    def done(self, index: int) -> None:
        with self._cond:
            self._done(index)

    def _done(self, index: int, taking_one: bool = False) -> None:
        plan = self._plan
        self._running -= 1
        self._remaining -= 1
        self._occupied[plan.affinity[index]] -= 1
        if self._exclusive_global and plan.exclusive[index]:
            self._exclusive_running = False
        woken = 0
        for key in plan.memberships[index]:
            members = plan.groups[key]
            self._heads[key] += 1
            if self._heads[key] < len(members):
                head = members[self._heads[key]]
                if not self._queued[head] and self._is_ready(head):
                    self._push(head)
                    woken += 1
        if self._remaining == 0 or self._ready_exclusive or (
            self._exclusive_global and plan.exclusive[index]
        ):
            self._cond.notify_all()
        elif woken > taking_one:
            self._cond.notify(woken - taking_one)

    def stop(self) -> None:
        """Hand out nothing more; tests already running finish."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- the process controller's interface (never blocks) --------------------

    @property
    def remaining(self) -> int:
        return self._remaining

    @property
    def unstarted_seconds(self) -> float | None:
        """Expected seconds of the tests not handed out yet; None without history."""
        return self._unstarted_seconds if self._lpt else None

    def take_chain(self, affinity: Hashable | None, free_tests: int, free_seconds: float | None = None) -> list[int]:
        """Tests for one worker thread to run in this order; [] if none is ready.

        A group's ready test comes with the rest of its group (up to the first
        test that also belongs to another group): a group is never split
        between workers unless one gives tests back. A test in no group comes
        with up to ``free_tests - 1`` more ready ones of its module, fewer if
        their expected times add up to ``free_seconds`` first.
        """
        plan = self._plan
        with self._cond:
            if self._stopped or self._remaining == 0:
                return []
            index = self._pick(affinity)
            if index is None:
                return []
            chain = [self._start(index)]
            keys = plan.memberships[index]
            if len(keys) == 1:
                members = plan.groups[keys[0]]
                for following in members[self._heads[keys[0]] + 1 :]:
                    if plan.memberships[following] != keys or self._queued[following]:
                        break
                    self._queued[following] = True
                    chain.append(self._start(following))
            elif not keys:
                key = plan.affinity[index]
                heap = self._ready.get(key)
                seconds = self._expected[index]
                while heap and len(chain) < free_tests and (free_seconds is None or seconds < free_seconds):
                    following = self._by_rank[heapq.heappop(heap)]
                    seconds += self._expected[following]
                    chain.append(self._start(following))
                if heap is not None and not heap:
                    del self._ready[key]
            return chain

    def give_back(self, indices: list[int]) -> None:
        """Tests handed out but never started: they may go to another worker."""
        plan = self._plan
        with self._cond:
            for index in indices:
                self._running -= 1
                self._occupied[plan.affinity[index]] -= 1
                self._queued[index] = False
                self._unstarted_seconds += self._expected[index]
            for index in sorted(indices):
                if not self._queued[index] and self._is_ready(index):
                    self._push(index)


def _ranks(plan: Plan) -> tuple[list[int], list[int]]:
    """(rank of each test, test of each rank). Without history the rank is the
    test's index; with it, tests are ranked by how much expected work their
    start opens, most first: a group's test by the time from it to the
    group's end, a free test by its own."""
    identity = list(range(len(plan.items)))
    expected = plan.expected
    if expected is None:
        return identity, identity
    weight = list(expected)
    for members in plan.groups.values():
        left = 0.0
        for index in reversed(members):
            left += expected[index]
            weight[index] = max(weight[index], left)
    by_rank = sorted(identity, key=lambda i: (-weight[i], i))
    rank = [0] * len(by_rank)
    for position, index in enumerate(by_rank):
        rank[index] = position
    return rank, by_rank
