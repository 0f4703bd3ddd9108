"""pytest-xdist's worker interface, as fleet's worker processes offer it.

Plugins were made to work in parallel through the small interface pytest-xdist
gives them, so fleet speaks it too, whether or not pytest-xdist is installed:

* in the controller, one :class:`WorkerNode` per worker process, given to
  ``pytest_configure_node`` before the worker starts (plugins put their data in
  ``node.workerinput``), to ``pytest_testnodeready`` once it runs, and to
  ``pytest_testnodedown`` when it has ended, with the worker's
  ``node.workeroutput`` (or the error that ended it);
* in each worker, ``config.workerinput`` (``workerid`` ``p0``, ``p1``, ...,
  ``workercount``, ``testrunuid``, ``mainargv`` and what the plugins put in),
  ``config.workeroutput`` (sent back when the worker ends) and the variables
  ``PYTEST_XDIST_WORKER``, ``PYTEST_XDIST_WORKER_COUNT``,
  ``PYTEST_XDIST_TESTRUNUID``; and a base temporary directory of its own under
  the run's (``popen-p0``), as xdist's workers have.

A worker is forked from a controller that is already configured, so plugins
that pick their role in ``pytest_configure`` act there as the controller does;
the few that keep results in the process they run in have an adapter
(:mod:`fleet.adapters`). An adapter may also name plugins whose xdist hooks
must not be called because the plugin is not in its distributed mode
(``not_xdist_ready``).
"""

from __future__ import annotations

import os
import platform
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from fleet import adapters
from fleet.state import internals


def xdist_id(process: str) -> str:
    """The worker id plugins see: fleet's own (``p1``), so that ``worker_id``,
    ``PYTEST_XDIST_WORKER`` and xdist's ``get_xdist_worker_id`` agree in a
    process running one test at a time (with threads, ``worker_id`` names the
    thread: ``p1t3``)."""
    return process


class WorkerNode:
    """What xdist's ``WorkerController`` offers the hooks that receive it."""

    def __init__(self, config: pytest.Config, name: str, count: int, testrunuid: str) -> None:
        workerid = xdist_id(name)
        self.config = config
        self.name = name
        self.workerinput: dict[str, Any] = {
            "workerid": workerid,
            "workercount": count,
            "testrunuid": testrunuid,
            "mainargv": list(sys.argv),
        }
        # set when the worker ends well (as xdist's is: a crashed worker has none)
        self.workeroutput: dict[str, Any]
        info = SimpleNamespace(
            executable=sys.executable, platform=sys.platform, version_info=tuple(sys.version_info),
            cwd=os.getcwd(), implementation=platform.python_implementation(),
        )
        self.gateway = SimpleNamespace(id=workerid, spec=SimpleNamespace(popen=True), _rinfo=lambda: info)
        self.nodemanager = SimpleNamespace(roots=[])

    def __repr__(self) -> str:
        return f"<WorkerNode {self.workerinput['workerid']} ({self.name})>"


problems_key = pytest.StashKey[list[str]]()


def _call(pytest_config: pytest.Config, name: str, /, **kwargs: Any) -> list[Any]:
    """Call each plugin's implementation of an xdist hook, one by one.

    A plugin may implement the controller's side of a hook expecting what its
    own worker side, run in an xdist worker, would have left (fleet's workers
    are forked from a configured controller): its failure is reported in one
    line at the end of the run, never an INTERNALERROR.
    """
    config = pytest_config
    caller = getattr(config.hook, name, None)
    if caller is None:
        return []
    excluded = {id(p) for p in adapters.gather(config, "not_xdist_ready").values() if p is not None}
    results = []
    for impl in reversed(caller.get_hookimpls()):
        if id(impl.plugin) in excluded:
            continue
        try:
            result = impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception as exc:
            problem = f"{impl.plugin_name}'s {name} failed: {type(exc).__name__}: {exc}"
            config.stash.setdefault(problems_key, []).append(problem)
            continue
        if result is not None:
            results.append(result)
    return results


def problems(config: pytest.Config) -> list[str]:
    return list(config.stash.get(problems_key, []))


def configure_node(config: pytest.Config, node: WorkerNode) -> None:
    _call(config, "pytest_configure_node", node=node)


def node_ready(config: pytest.Config, node: WorkerNode) -> None:
    _call(config, "pytest_testnodeready", node=node)


def node_down(config: pytest.Config, node: WorkerNode, error: Any) -> None:
    _call(config, "pytest_testnodedown", node=node, error=error)
    adapters.notify(config, "node_down", node=node, error=error)


def auto_workers(config: pytest.Config) -> int | None:
    """``pytest_xdist_auto_num_workers``, for ``--mp auto``: a plugin's answer, or
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` (as xdist's own answer reads it)."""
    answers = _call(config, "pytest_xdist_auto_num_workers", config=config)
    answer = answers[0] if answers else None
    if answer is None:
        raw = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
        answer = int(raw) if raw.strip().isdigit() else None
    return int(answer) if answer else None


def become_worker(config: pytest.Config, workerinput: dict[str, Any]) -> None:
    """In a worker process, before its first test."""
    config.workerinput = workerinput  # type: ignore[attr-defined]
    config.workeroutput = {}  # type: ignore[attr-defined]
    os.environ["PYTEST_XDIST_WORKER"] = workerinput["workerid"]
    os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(workerinput["workercount"])
    os.environ["PYTEST_XDIST_TESTRUNUID"] = workerinput["testrunuid"]
    internals.nest_basetemp(config, f"popen-{workerinput['workerid']}")
