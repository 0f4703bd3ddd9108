"""A pytest plugin loaded into the runs ``overhead.py`` measures (``-p overhead_probe``).

It measures, without changing what runs, the CPU time each process and its
main thread spend between the start and the end of ``pytest_runtestloop``
(the tests, not start-up or collection), and how many tests each process
ran. With ``FLEET_PROBE_COMPONENTS=1`` it also profiles every thread with
``cProfile`` on a CPU clock (``time.thread_time``: waiting costs nothing) and
adds up each function's own time by component (:data:`COMPONENTS`), so the
cost of the monitor, the report transport, the live view or the Allure bridge
is one number each.

Worker processes are forked from the controller and leave by ``os._exit``:
the probe starts afresh in a forked child (``os.register_at_fork``) and writes
its numbers just before the child exits. Each process writes one JSON file
into ``$FLEET_PROBE_OUT`` (and, with ``$FLEET_PROBE_PSTATS`` naming a
directory, its profiles for ``python -m pstats``).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

# (what a path contains, component); the first match wins
COMPONENTS = [
    ("fleet/report/monitor.py", "fleet: run monitor"),
    ("fleet/report/live.py", "fleet: live view"),
    ("/rich/", "fleet: live view"),
    ("fleet/report/", "fleet: other reports"),
    ("fleet/adapters/allure.py", "fleet: Allure bridge"),
    ("allure", "allure-pytest"),
    ("fleet/adapters/", "fleet: other adapters"),
    ("fleet/execute/processes/wire.py", "fleet: report transport"),
    ("fleet/execute/processes/", "fleet: process executor"),
    ("fleet/execute/threads.py", "fleet: thread executor"),
    ("fleet/plan/", "fleet: scheduling"),
    ("fleet/state/relay.py", "fleet: log relay"),
    ("fleet/state/capture.py", "fleet: output capture"),
    ("fleet/state/logs.py", "fleet: log capture"),
    ("fleet/state/thread_warnings.py", "fleet: warnings"),
    ("fleet/state/setupstate.py", "fleet: setup state"),
    ("fleet/state/fixtures.py", "fleet: fixture slots"),
    ("fleet/state/watch.py", "fleet: state watch"),
    ("fleet/execute/interference.py", "fleet: state watch"),
    ("fleet/", "fleet: other"),
    ("_pytest/terminal.py", "pytest: terminal"),
    ("_pytest/capture.py", "pytest: capture"),
    ("_pytest/logging.py", "pytest: logging"),
    ("_pytest/reports.py", "pytest: reports"),
    ("/_pytest/", "pytest: other"),
    ("/pluggy/", "pluggy: hook calls"),
    ("multiprocessing/", "pipes and pickling"),
    ("pickle", "pipes and pickling"),
    ("{method 'recv", "pipes and pickling"),
    ("{method 'send", "pipes and pickling"),
    ("{built-in method _pickle", "pipes and pickling"),
    ("{built-in method posix.read", "pipes and pickling"),
    ("{built-in method posix.write", "pipes and pickling"),
    ("threading.py", "threads: locks and waits"),
    ("queue.py", "threads: locks and waits"),
    ("{method 'acquire", "threads: locks and waits"),
]
OTHER = "other (stdlib, the tests)"


def component(filename: str) -> str:
    for needle, name in COMPONENTS:
        if needle in filename:
            return name
    return OTHER


class _Probe:
    def __init__(self, role: str, collected: int = 0) -> None:
        self.role = role
        self.collected = collected
        self.tests = 0
        # (main thread or not, its profile)
        self.profiles: list[tuple[bool, cProfile.Profile]] = []
        self.lock = threading.Lock()
        self.main_cpu = -time.thread_time()
        self.process_cpu = -time.process_time()
        self.wall = -time.perf_counter()

    def profile_this_thread(self) -> None:
        profile = cProfile.Profile(time.thread_time)
        with self.lock:
            self.profiles.append((threading.current_thread() is threading.main_thread(), profile))
        profile.enable()

    def write(self) -> None:
        self.main_cpu += time.thread_time()
        self.process_cpu += time.process_time()
        self.wall += time.perf_counter()
        # "main thread" / "other threads" -> component -> seconds of its own CPU time
        components: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for on_main, profile in list(self.profiles):
            profile.snapshot_stats()  # the thread may be gone; its profile stays readable
            thread = components["main thread" if on_main else "other threads"]
            for (filename, _, function), (_, _, own, _, _) in profile.stats.items():
                thread[component(filename if filename != "~" else function)] += own
        keep = os.environ.get("FLEET_PROBE_PSTATS")
        if keep and self.profiles:  # for a closer look: python -m pstats FILE
            for on_main in (True, False):
                chosen = [p for main, p in self.profiles if main == on_main]
                if chosen:
                    stats = pstats.Stats(chosen[0])
                    for profile in chosen[1:]:
                        stats.add(profile)
                    stats.dump_stats(Path(keep) / f"{self.role}-{os.getpid()}-{'main' if on_main else 'threads'}.prof")
        data = {
            "role": self.role,
            "pid": os.getpid(),
            "collected": self.collected,
            "tests": self.tests,
            "main_thread_cpu_s": self.main_cpu,
            "process_cpu_s": self.process_cpu,
            "wall_s": self.wall,
            "components_s": {thread: dict(times) for thread, times in components.items()},
        }
        out = Path(os.environ["FLEET_PROBE_OUT"])
        (out / f"{self.role}-{os.getpid()}.json").write_text(json.dumps(data))


_probe: _Probe | None = None
_components = os.environ.get("FLEET_PROBE_COMPONENTS") == "1"


def _thread_started(*_: Any) -> None:
    """threading.setprofile's hook: the first event of a new thread starts its profile."""
    if _probe is not None:
        _probe.profile_this_thread()


def _in_forked_child() -> None:
    global _probe
    _probe = _Probe("worker")
    if _components:
        _probe.profile_this_thread()
    real_exit = os._exit

    def exit_after_writing(code: int) -> None:
        if _probe is not None:
            _probe.write()
        real_exit(code)

    os._exit = exit_after_writing


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    global _probe
    if os.environ.get("FLEET_WORKER"):  # a spawned worker: not measured
        return (yield)
    _probe = _Probe("main", len(session.items))
    os.register_at_fork(after_in_child=_in_forked_child)
    if _components:
        threading.setprofile(_thread_started)
        _probe.profile_this_thread()
    try:
        return (yield)
    finally:
        threading.setprofile(None)
        probe, _probe = _probe, None
        if probe is not None and probe.role == "main":
            probe.write()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Any:
    probe = _probe
    if probe is not None:
        with probe.lock:
            probe.tests += 1
    return (yield)
