"""Allure results from parallel runs: one result per test, in every mode.

allure-pytest keeps its results in progress in two places that assume one
test at a time (allure-python #697 is what that does under threads):

* ``AllureReporter._items``: a stack per thread, where a new thread starts
  from a copy of the first thread's last item, and where a fixture's
  container lives in the stack of whichever thread set the fixture up, so a
  test on another thread cannot find it;
* ``AllureListener._cache``: uuids keyed by ``id(fixturedef)``, one fixture
  container per fixture, while fleet keeps one instance of a module fixture
  per module at the same time (and one function fixture per running test).

fleet replaces both on allure-pytest's listener: a test's own steps,
attachments and fixture results stay in its thread's stack, containers are
shared by all threads, and a container is keyed by the fixture *instance*
(fleet's slot for it). It also names each result's thread label after the
worker (``p1t3``), so Allure's own timeline shows the workers, and writes
the results no worker could: a test whose worker crashed or timed out, or
that never ran, gets one result from the controller, and an attempt lost in
a crash (the test runs again alone) is written as an earlier result with the
same history id, which Allure shows as a retry.

Everything here that allure-pytest does not document is named in
:data:`TOUCHPOINTS` and checked before a parallel run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pytest

from fleet.report.monitor import RunMonitor
from fleet.state import internals
from fleet.state.context import current
from fleet.state.fixtures import instance_of
from fleet.state.internals import internal_frame

PLUGIN = "allure_listener"

TOUCHPOINTS = [
    ("allure_pytest.listener", "AllureListener.__init__:allure_logger"),
    ("allure_pytest.listener", "AllureListener.__init__:_cache"),
    ("allure_commons.reporter", "AllureReporter.__init__:_items"),
    ("allure_pytest.utils", "allure_name"),
    ("allure_pytest.utils", "allure_full_name"),
    ("allure_pytest.utils", "allure_labels"),
    ("allure_pytest.utils", "allure_suite_labels"),
    ("allure_pytest.utils", "allure_package"),
    ("allure_pytest.utils", "pytest_markers"),
    ("allure_pytest.utils", "get_history_id"),
]


def listener(config: pytest.Config) -> Any | None:
    return config.pluginmanager.get_plugin(PLUGIN)


def check() -> str | None:
    """One line naming what this allure-pytest lacks, or None."""
    for module_name, path in TOUCHPOINTS:
        if not internals.exists(module_name, path):
            return (
                f"fleet: this allure-pytest ({_version()}) has no {module_name}.{path.replace(':', ' setting ')}, "
                "which fleet needs for Allure results from parallel runs; use allure-pytest 2.13 or newer"
            )
    return None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("allure-pytest")
    except Exception:
        return "unknown version"


class _Items:
    """Stands in for ``AllureReporter._items``: per-thread stacks, shared containers."""

    def __init__(self) -> None:
        from allure_commons.model2 import TestResultContainer

        self._container_type = TestResultContainer
        self._local = threading.local()
        self._containers: dict[str, Any] = {}

    def _mine(self) -> OrderedDict[str, Any]:
        try:
            return self._local.items
        except AttributeError:
            self._local.items = OrderedDict()
            return self._local.items

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, self._container_type):
            self._containers[key] = value
        else:
            self._mine()[key] = value

    def __getitem__(self, key: str) -> Any:
        mine = self._mine()
        return mine[key] if key in mine else self._containers[key]

    def get(self, key: str) -> Any:
        mine = self._mine()
        return mine[key] if key in mine else self._containers.get(key)

    def pop(self, key: str) -> Any:
        mine = self._mine()
        return mine.pop(key) if key in mine else self._containers.pop(key)

    def __iter__(self) -> Any:
        return iter(self._mine())

    def __reversed__(self) -> Any:
        return reversed(self._mine())

    def cleanup(self) -> None:
        pass  # a thread's stack goes with the thread


class _InstanceCache:
    """Stands in for allure-pytest's ``ItemCache``: a fixture's uuid per instance."""

    def __init__(self) -> None:
        self._items: dict[Any, str] = {}

    @staticmethod
    def _key(obj: Any) -> Any:
        if isinstance(obj, str):  # a node id: one per test
            return id(obj)
        instance = instance_of(obj)
        return id(obj) if instance is None else (id(obj), instance)

    def get(self, obj: Any) -> str | None:
        return self._items.get(self._key(obj))

    def push(self, obj: Any) -> str:
        from allure_commons.utils import uuid4

        return self._items.setdefault(self._key(obj), uuid4())

    def pop(self, obj: Any) -> str | None:
        return self._items.pop(self._key(obj), None)


def _worker_label() -> Any:
    """An allure-commons plugin: a result's thread label names its worker."""
    import allure_commons

    class WorkerLabel:
        @allure_commons.hookimpl
        def report_result(self, result: Any) -> None:
            worker = current.worker
            if worker is None:
                return
            for label in result.labels:
                if label.name == "thread":
                    label.value = worker

    return WorkerLabel()


def configure(config: pytest.Config, processes: bool) -> None:
    """Before any test runs (and before workers fork); allure-pytest is loaded."""
    import allure_commons

    found = listener(config)

    problem = check()
    if problem:
        raise pytest.UsageError(problem)
    found.allure_logger._items = _Items()
    found._cache = _InstanceCache()
    plugin = _worker_label()
    allure_commons.plugin_manager.register(plugin, "fleet-allure-worker-label")
    config.add_cleanup(lambda: allure_commons.plugin_manager.unregister(plugin))
    if processes:
        config.pluginmanager.register(HandedOverFixtures(config), HANDED_OVER)


HANDED_OVER = "fleet-allure-handed-over"


def watch(config: pytest.Config, monitor: RunMonitor, items: list[pytest.Item]) -> None:
    """The run starts: the controller writes what no worker can."""
    config.pluginmanager.register(ControllerResults(monitor, items), "fleet-allure-results")


def worker_finishing(config: pytest.Config, made: list[Any]) -> None:
    """A worker process ends: containers for the session fixtures it was handed."""
    handed_over = config.pluginmanager.get_plugin(HANDED_OVER)
    if made and handed_over is not None:
        handed_over.write(made)


class HandedOverFixtures:
    """In a worker process: which of its tests used which session fixture.

    A session fixture the first worker made and handed over is never set up
    here, so allure-pytest has no container for it; as the worker ends,
    :meth:`write` writes one whose children are this worker's tests, with
    the set-up the first worker ran. Its teardown runs (and is reported)
    once, in the first worker.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.users: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    @pytest.hookimpl(wrapper=True)
    @internal_frame
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        __tracebackhide__ = True
        try:
            return (yield)
        finally:
            found = listener(self.config)
            uuid = found._cache.get(item.nodeid) if found is not None else None
            if uuid is not None:
                with self._lock:
                    for name in getattr(item, "fixturenames", ()):
                        self.users.setdefault(name, []).append(uuid)

    def write(self, made: list[Any]) -> None:
        import allure_commons
        from allure_commons.model2 import TestBeforeResult, TestResultContainer
        from allure_commons.utils import now, uuid4

        for entry in made:
            children = self.users.get(entry.argname)
            if entry.value is None or not children:
                continue
            container = TestResultContainer(
                uuid=uuid4(), children=list(dict.fromkeys(children)), start=int(entry.start * 1000), stop=now(),
            )
            container.befores.append(TestBeforeResult(
                name=entry.argname, status="passed", start=int(entry.start * 1000), stop=int(entry.stop * 1000),
            ))
            allure_commons.plugin_manager.hook.report_container(container=container)


class ControllerResults:
    """In the controller: results for tests that could not write their own."""

    def __init__(self, monitor: RunMonitor, items: list[pytest.Item]) -> None:
        monitor.on_lost_attempt(self._lost_attempt)
        self._items_by_nodeid = {item.nodeid: item for item in items}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        kind = getattr(report, "fleet_lost", None)
        item = self._items_by_nodeid.get(report.nodeid)
        if kind is None or item is None:
            return
        worker = getattr(report, "fleet_worker", None) or "-"
        status = "failed" if kind == "timeout" else "broken"
        write_result(item, worker, status, str(report.longrepr), report.start, report.stop)

    def _lost_attempt(self, item: pytest.Item, worker: str, text: str, start: float, stop: float) -> None:
        write_result(item, worker, "broken", text, start, stop)


def write_result(item: pytest.Item, worker: str, status: str, message: str, start: float, stop: float) -> None:
    """One Allure result for ``item``, labelled as allure-pytest labels its own."""
    import allure_commons
    from allure_commons.model2 import Label, Parameter, StatusDetails, TestResult
    from allure_commons.types import LabelType
    from allure_commons.utils import host_tag, md5, platform_label, represent, uuid4
    from allure_pytest import utils

    params = item.callspec.params if hasattr(item, "callspec") else {}
    param_id = item.callspec.id if hasattr(item, "callspec") else None
    full_name = utils.allure_full_name(item)
    parameters = [Parameter(name=name, value=represent(value)) for name, value in params.items()]
    labels = [Label(name=name, value=value) for name, value in utils.allure_labels(item)]
    labels += [Label(name=LabelType.TAG, value=value) for value in utils.pytest_markers(item)]
    present = {label.name for label in labels}
    labels += [Label(name=name, value=value) for name, value in utils.allure_suite_labels(item) if name not in present]
    labels += [
        Label(name=LabelType.HOST, value=host_tag()),
        Label(name=LabelType.THREAD, value=worker),
        Label(name=LabelType.FRAMEWORK, value="pytest"),
        Label(name=LabelType.LANGUAGE, value=platform_label()),
        Label(name="package", value=utils.allure_package(item)),
    ]
    result = TestResult(
        uuid=uuid4(),
        name=utils.allure_name(item, params, param_id),
        fullName=full_name,
        testCaseId=md5(full_name),
        historyId=utils.get_history_id(full_name, parameters, original_values=params),
        start=int(start * 1000),
        stop=int(stop * 1000),
        status=status,
        statusDetails=StatusDetails(message=message.splitlines()[0] if message else "", trace=message),
        parameters=parameters,
        labels=labels,
    )
    title_path = getattr(utils, "allure_title_path", None)
    if title_path is not None:
        result.titlePath = [*title_path(item)]
    allure_commons.plugin_manager.hook.report_result(result=result)
