"""What travels between a worker process and the controller, and how.

Messages are tuples whose first element names them, pickled over a pipe
(``multiprocessing.Pipe``). The controller sends one message at a time; a
worker sends lists of messages, so that tests finishing together cost one
write.

controller -> worker::

    ("run", [(index, closing), ...])   a chain: run these tests in this order on
                                       one thread; after each, no more tests come
                                       under its ancestors at depths ``closing``
    ("give back",)                     return tests handed out but not started
    ("stop",)                          start no more tests (return the rest)
    ("workerinput", {...})             a spawned worker, first: pytest-xdist's
                                       config.workerinput
    ("shutdown",)                      tear down, say bye, exit

worker -> controller::

    ("made", [Made, ...])              first worker: the session fixtures it made
    ("started", index, worker, time)   sent with the previous test's result
    ("result", index, worker, events, warnings, carried[, held])
                                       events: the test's logging calls, in order
                                       (hook name, report or location); carried:
                                       what it left on its item that the
                                       controller's plugins read
                                       held: a failure to report only once
                                       "settled" (threads in the worker)
    ("caught", index, what it did)     a test changed process-wide state
    ("settled", index, culprit | None, what the culprit did)
                                       a held failure: beside a caught test
                                       (run it again alone) or not (log it)
    ("raised", index, worker, kind, exit_returncode | None, text)
                                       kind: "exit" (pytest.exit), "interrupt"
                                       (KeyboardInterrupt in the test), "internal"
    ("timeout", index, worker, seconds, stack, text)
    ("making", worker, fixture name)   a session fixture's set-up starts there
    ("returned", [index, ...])
    ("bye", [(index, reports)], [fixture name, ...], workeroutput)

Reports of tests that failed, were skipped or errored travel in pytest's own
serializable form (``pytest_report_to_serializable``), as in pytest-xdist;
the rest, which carry no traceback, are pickled as they are, which costs a
fraction as much. Either way plugins that add report attributes keep them.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import pytest

from fleet.execute.lost import describe_exception, failed_report
from fleet.state import internals


def dump_report(config: pytest.Config, report: pytest.TestReport) -> Any:
    """A report with no failure representation goes as it is (pickle is fast);
    any other in pytest's serializable form."""
    if report.longrepr is None:
        return report
    return config.hook.pytest_report_to_serializable(config=config, report=report)


def dump_events(config: pytest.Config, events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    """A test's logging calls for the wire: reports dumped, locations as they are."""
    return [
        (name, dump_report(config, kwargs["report"]) if name == "pytest_runtest_logreport" else kwargs)
        for name, kwargs in events
    ]


def load_events(config: pytest.Config, data: list[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, {"report": load_report(config, value)} if name == "pytest_runtest_logreport" else value)
        for name, value in data
    ]


def report_data(events: list[tuple[str, Any]]) -> list[Any]:
    """A test's reports among its logging calls as sent (their sent form)."""
    return [data for name, data in events if name == "pytest_runtest_logreport"]


def load_report(config: pytest.Config, data: Any) -> pytest.TestReport:
    if isinstance(data, pytest.TestReport):
        return data
    report = config.hook.pytest_report_from_serializable(config=config, data=data)
    internals.restore_subtest_kwargs(report, data)
    return report


def dump_warning(
    warning_message: warnings.WarningMessage, when: str, nodeid: str, location: Any
) -> tuple[Any, ...]:
    category = warning_message.category
    return (
        str(warning_message.message),
        f"{category.__module__}:{category.__qualname__}",
        warning_message.filename,
        warning_message.lineno,
        when,
        nodeid,
        location,
    )


def replay_warning(config: pytest.Config, data: tuple[Any, ...]) -> None:
    """Fire ``pytest_warning_recorded`` in the controller for a worker's warning."""
    message, category_name, filename, lineno, when, nodeid, location = data
    category = _category(category_name)
    warning_message = warnings.WarningMessage(category(message), category, filename, lineno)
    config.hook.pytest_warning_recorded.call_historic(
        kwargs=dict(warning_message=warning_message, when=when, nodeid=nodeid, location=location)
    )


def _category(name: str) -> type[Warning]:
    module_name, _, qualname = name.partition(":")
    try:
        obj: Any = __import__(module_name, fromlist=["_"])
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, Warning):
            return obj
    except Exception:
        pass
    return UserWarning


def unpicklable(items: list[pytest.Item], message: tuple[Any, ...], problem: Exception) -> tuple[Any, ...]:
    """A message in place of one that could not be pickled: a result becomes
    the test's failure, naming why."""
    if message[0] != "result":
        return message
    _, index, name, events, warnings, carried, *held = message
    try:
        pickle.dumps(events)
    except Exception:
        text = f"fleet could not send this test's reports from {name}: {describe_exception(problem)}"
        item = items[index]
        location = {"nodeid": item.nodeid, "location": item.location}
        events = [
            ("pytest_runtest_logstart", location),
            ("pytest_runtest_logreport", failed_report(item, text, "internal")),
            ("pytest_runtest_logfinish", location),
        ]
    try:
        pickle.dumps(warnings)
    except Exception:
        warnings = []
    try:
        pickle.dumps(carried)
    except Exception:
        carried = {}
    return ("result", index, name, events, warnings, carried, *held)
