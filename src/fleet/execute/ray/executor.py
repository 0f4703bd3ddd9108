"""Worker processes on a Ray cluster: the processes controller, with remote workers.

:class:`RayExecutor` is :class:`~fleet.execute.processes.controller.ProcessExecutor`
with another way to start a worker: a host actor on a node
(:mod:`.host`) starts it as a spawned worker there, and a bridge
(:mod:`.bridge`) makes it look to the controller like a local spawned worker
with a connection. Dispatch, results, session fixtures, crashes, timeouts
and restarts are the controller's own. What is Ray's:

* **placement**: each worker holds a share of a CPU on a node fleet picks
  (the controller's node first, then the one with the most room), so a
  node's workers can be counted, refused or replaced;
* **start-up**: workers start at once and collect side by side; each is
  given work once it collected exactly the controller's tests and, but for
  the first, once the first has made the session fixtures (their values go
  to every node once, through the object store);
* **refusal**: a node whose Python or pytest differs from the controller's,
  or where a worker cannot start, gets no workers (one line in the summary;
  exit code 4 when no node is left to run anything);
* **hosts that come and go**: a worker lost with its node fails only the
  tests it was running (``worker r3 on node 10.0.0.2 lost: node died while
  running ...``); its unstarted tests go to the others and, when a node has
  room, a new worker takes its place; under ``--mp auto`` a node that joins
  gets workers;
* **labels**: reports name the node (``-v``: ``[r1@10.0.0.2] PASSED``), the
  timeline groups workers by node.
"""

from __future__ import annotations

import os
import pickle
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fleet import adapters
from fleet.execute.processes import nodes
from fleet.execute.processes.controller import ProcessExecutor
from fleet.execute.processes.dispatch import Worker
from fleet.execute.processes.launch import CONTROLLER_ONLY_FLAGS, collection_difference
from fleet.execute.processes.nodes import WorkerNode
from fleet.execute.ray.bridge import RemoteProcess
from fleet.execute.ray.cluster import Cluster, Node
from fleet.execute.ray.host import SHIPPED_DIRECTORY, WorkerHost, versions
from fleet.state import relay
from fleet.worker import thread_names

# How often the controller looks at the cluster's nodes (for nodes that join).
NODE_LOOK = 2.0
# Variables of the controller's environment that change what pytest collects
# or loads, and so go to every remote worker.
FORWARDED_PREFIX = "PYTEST_"
# (not pytest's temporary root: a directory of this machine's, perhaps absent there)
NOT_FORWARDED = ("PYTEST_XDIST_", "PYTEST_CURRENT_TEST", "PYTEST_DEBUG_TEMPROOT")


class RayExecutor(ProcessExecutor):
    @staticmethod
    def reserve(threads: int) -> int:
        """A second chain per thread: a remote worker's results and its next
        work each cross the network and Ray, milliseconds where a local pipe
        takes microseconds, and with one chain per thread a thread waited that
        long between tests."""
        return threads

    def __init__(self, *arguments: Any, cluster: Cluster, grow: bool) -> None:
        """``arguments`` are :class:`ProcessExecutor`'s; ``grow``: ``--mp auto``."""
        super().__init__(*arguments)
        processes = len(self.names)
        plan = self.plan
        self.start_method = "ray"
        self.notes.clear()  # nothing is forked or spawned here
        self.names = [f"r{i}" for i in range(processes)]
        self.cluster = cluster
        self.grow = grow  # --mp auto: a node that joins gets workers
        self.wanted = processes
        self.cap = max(1, plan.runnable_groups)
        self._used_names: set[str] = set()
        self._nodes: list[Node] = cluster.nodes()
        self._looked = time.monotonic()
        self._placed: dict[str, str] = {}  # worker -> node id
        self._labels: dict[str, str] = {}  # worker and its threads -> node label
        self.refused: dict[str, str] = {}  # node id -> why
        self._collected: dict[str, list[str]] = {}  # parked: collected before the session fixtures were made
        self._making: dict[str, bool] = {}  # worker -> it makes the session fixtures
        self._given_up = 0  # crashed workers not replaced (--max-worker-restart)
        self._last_loss = ""
        self._made_ref: Any = None
        total = sum(node.cpus for node in self._nodes) or 1
        self.share = min(1.0, total / max(1, processes))  # CPUs each worker holds
        self.controller_versions = versions()
        self.arguments, self.cwd = remote_arguments(self.config)
        self.shipped_to = allure_directory(self.config)
        if self.shipped_to is not None:  # each worker writes on its node; the files come back here
            self.arguments.append(f"--alluredir={SHIPPED_DIRECTORY}")
        self.environment = {
            k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIX) and not k.startswith(NOT_FORWARDED)
        }

    # -- starting workers --------------------------------------------------------

    def _start(self, name: str, make_session_fixtures: bool = False) -> Worker:
        if name in self._used_names:  # a replacement is a new worker, maybe elsewhere
            name = self._new_name()
        self._used_names.add(name)
        worker = super()._start(name, make_session_fixtures)
        if name == self.names[0] and not self._others_started:
            for other in self.names[1:]:  # they collect while the first makes the session fixtures
                super()._start(other)
                self._used_names.add(other)
        return worker

    def _new_name(self) -> str:
        name = f"r{len(self.names)}"
        self.names.append(name)
        return name

    def _launch(self, name: str, make_session_fixtures: bool, node: WorkerNode) -> Worker:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        import ray

        target = self._place()
        node_id = target.id if target is not None else self._nodes[0].id
        actor = (
            ray.remote(WorkerHost)
            .options(
                num_cpus=self.share,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                max_restarts=0,
                name=f"fleet-{self.testrun_uid[:8]}-{name}",
            )
            .remote()
        )
        environment = {
            **self.environment,
            "FLEET_TESTRUNUID": self.testrun_uid,
            "FLEET_WORKER_COUNT": str(len(self.names)),
        }
        start = dict(
            name=name, args=self.arguments, cwd=self.cwd, environment=environment,
            threads=self.threads, make=make_session_fixtures,
        )
        process = RemoteProcess(actor, start, self._refusal, self.cluster.alive, self.shipped_to)
        worker = Worker(name, process, process.conn, ready=False)
        self.workers[name] = worker
        self._placed[name] = node_id
        self._making[name] = make_session_fixtures
        return worker

    def _place(self) -> Node | None:
        """The node with the most room for one more worker, the controller's first."""
        here = Counter(self._placed[w] for w in self.workers if w in self._placed)
        best, room = None, 0.0
        for node in self._nodes:
            if node.id in self.refused:
                continue
            free = node.cpus / self.share - here[node.id]
            if free >= 1 - 1e-9 and free > room:
                best, room = node, free
        return best

    def _refusal(self, info: dict[str, Any]) -> str | None:
        """A node whose Python or pytest is not the controller's runs none of its tests."""
        mine = self.controller_versions
        theirs = {key: info.get(key) for key in mine}
        if theirs == mine:
            return None
        return (
            f"fleet: node {info.get('ip')} runs Python {theirs['Python']} and pytest {theirs['pytest']}, "
            f"the controller Python {mine['Python']} and pytest {mine['pytest']}: no workers there"
        )

    # -- messages of remote workers ------------------------------------------------

    def _handle(self, worker: Worker, message: tuple[Any, ...]) -> None:
        tag = message[0]
        if tag == "host":
            self._host(worker, message[1])
        elif tag == "refused":
            self._refuse(self._placed[worker.name], message[1])
        elif tag == "collected":
            self._collected[worker.name] = message[1]
            if self._others_started or self._making.get(worker.name):
                self._welcome_remote(worker)
        else:
            super()._handle(worker, message)

    def _host(self, worker: Worker, info: dict[str, Any]) -> None:
        label = self._node_label(info)
        worker.where = f" on node {label}"
        names = thread_names(worker.name, self.threads)
        for name in [worker.name, *names]:
            self._labels[name] = label
        self.events.placed(names, f"node {label}")

    def _node_label(self, info: dict[str, Any]) -> str:
        """The node's IP, with the start of its id when another node has the same IP
        (nodes started side by side on one machine)."""
        ip = str(info.get("ip"))
        if sum(1 for node in self._nodes if node.ip == ip) > 1:
            return f"{ip}/{str(info.get('node'))[:6]}"
        return ip

    def _welcome_remote(self, worker: Worker) -> None:
        collected = self._collected.pop(worker.name)
        self._welcome(worker, self.nodes[worker.name], collected, self._making[worker.name])
        worker.ready = True
        nodes.node_ready(self.config, self.nodes[worker.name])

    def _start_the_others(self) -> None:
        self._others_started = True
        for name in list(self._collected):
            if name in self.workers:
                self._welcome_remote(self.workers[name])

    def _send(self, worker: Worker, message: tuple[Any, ...]) -> None:
        if message[0] == "made" and isinstance(worker.process, RemoteProcess):
            if self._made_ref is None:  # once, in the object store, for every node
                import ray

                self._made_ref = ray.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
            worker.process.deliver_pickled(self._made_ref)
            return
        super()._send(worker, message)

    def _log(self, index: int, worker: str, events: list[relay.Event], extra: bool = False) -> None:
        label = self._labels.get(worker)
        if label:
            for report in relay.reports(events):
                report.fleet_node = label
        super()._log(index, worker, events, extra)

    # -- workers and nodes lost ----------------------------------------------------

    def _refuse(self, node_id: str, text: str) -> None:
        if node_id in self.refused:
            return
        self.refused[node_id] = text
        self.notes.append(text)
        usable = [node for node in self._nodes if node.id not in self.refused]
        if not usable and not any(w.ready for w in self.workers.values()) and not any(self._logged):
            pytest.exit(text, returncode=pytest.ExitCode.USAGE_ERROR)

    def _lost(self, worker: Worker) -> None:
        node_id = self._placed.get(worker.name, "")
        process = worker.process
        if not worker.ready:  # it never ran a test
            del self.workers[worker.name]
            worker.conn.close()
            cause = process.ended()
            self.nodes.pop(worker.name, None)
            if worker.shutting_down:  # the run ended before it was needed
                pass
            elif process.info is None:  # its node could not start it
                self._refuse(node_id, f"fleet: node {self._ip(node_id)} could not start a worker ({cause}): no workers there")
            elif node_id not in self.refused and self.cluster.alive(node_id):
                mine = [item.nodeid for item in self.plan.items]
                pytest.exit(
                    collection_difference(worker.label, mine, self._collected.get(worker.name)),
                    returncode=pytest.ExitCode.USAGE_ERROR,
                )
            self._look_soon()
            return
        restarts = self.restarts
        super()._lost(worker)
        if not worker.bye:
            self._last_loss = f"worker {worker.label} {process.how}: {process.cause}"
            if process.how == "crashed" and self.restarts == restarts:
                self._given_up += 1
            self._look_soon()

    def _can_replace(self, worker: Worker) -> bool:
        """A crashed worker is replaced (within --max-worker-restart) where there is
        room; one lost with its node is replaced by :meth:`_tend` when a node has room."""
        self._refresh()
        return worker.process.how == "crashed" and self._place() is not None

    def _ip(self, node_id: str) -> str:
        return next((node.ip for node in self._nodes if node.id == node_id), node_id[:12])

    def _never_run_reason(self) -> str:
        if self._given_up:
            return super()._never_run_reason()
        return f"not run: no worker left to run it ({self._last_loss or 'no node could start one'})"

    # -- watching the cluster ------------------------------------------------------

    def _look_soon(self) -> None:
        self._looked = 0.0

    def _refresh(self) -> None:
        self._nodes = self.cluster.nodes()
        self._looked = time.monotonic()

    def _tend(self) -> None:
        """Bring the workers back up to what the run wants, where a node has room:
        after a node was lost, and under ``--mp auto`` when a node joins."""
        if time.monotonic() - self._looked < NODE_LOOK:
            return
        self._refresh()
        if self._stopping or self._raised is not None or not self._others_started:
            return
        if not (self.scheduler.remaining or self.dispatcher.isolate or self.dispatcher.at_end):
            return
        if self.grow:
            usable = sum(node.cpus for node in self._nodes if node.id not in self.refused)
            self.wanted = min(self.cap, max(self.wanted, usable))
        while len(self.workers) < self.wanted - self._given_up and self._place() is not None:
            self._start(self._new_name())


def allure_directory(config: pytest.Config) -> str | None:
    """The controller's ``--alluredir``, absolute, when the run writes Allure results."""
    value = config.getoption("allure_report_dir", None)
    if not value:
        return None
    return str(Path(config.invocation_params.dir, value).resolve())


def remote_arguments(config: pytest.Config) -> tuple[list[str], str]:
    """The run's pytest arguments as a worker in the shipped rootdir needs them,
    and the directory (under it) it runs them in.

    The rootdir arrives as a copy somewhere else on each node, so a path into
    it becomes relative: to the invocation directory when that is inside the
    rootdir (the worker runs in its copy), else to the rootdir.
    """
    params = config.invocation_params
    root = Path(config.rootpath).resolve()
    invoked = Path(params.dir).resolve()
    base = invoked if invoked.is_relative_to(root) else root

    def mapped(value: str) -> str:
        if not value or value.startswith("-"):
            return value
        path_part, sep, rest = value.partition("::")
        path = Path(path_part)
        absolute = (path if path.is_absolute() else invoked / path).resolve()
        if (path.is_absolute() or base != invoked) and absolute.is_relative_to(root) and absolute.exists():
            return os.path.relpath(absolute, base) + sep + rest
        return value

    args = []
    for arg in params.args:
        arg = str(arg)
        if arg in CONTROLLER_ONLY_FLAGS:
            continue
        if arg.startswith("--") and "=" in arg:
            option, _, value = arg.partition("=")
            args.append(f"{option}={mapped(value)}")
        else:
            args.append(mapped(arg))
    extra = [arg for values in adapters.gather(config, "spawn_arguments").values() for arg in values]
    return args + extra, os.path.relpath(base, root)
