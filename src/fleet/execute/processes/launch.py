"""Starting worker processes, and knowing how they ended.

Workers are forked from the controller once the plan exists, so nothing is
collected twice. When forking is unsafe (threads already run in the
controller: a child would inherit the locks they hold), or with
``FLEET_START_METHOD=spawn``, a worker is a fresh ``python -m pytest`` with
the run's arguments; it collects on its own and must collect exactly what the
controller did (:func:`collection_difference`).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any, Callable, NoReturn

import pytest

from fleet import adapters

# How long a spawned worker may take to collect the suite.
SPAWN_COLLECT_TIMEOUT = 600.0
# Set in a spawned worker's environment: who it is and how to reach the controller.
SPAWNED = "FLEET_SPAWNED_WORKER"
# Options that act once for the whole run, in the controller: a spawned
# worker repeating them would undo the controller's work (empty the Allure
# results directory while other workers write to it).
CONTROLLER_ONLY_FLAGS = ("--clean-alluredir",)


# Where a thread may wait while the controller forks: blocked there, it holds
# no lock the child could find held (a plugin's server thread accepting
# connections: pytest-rerunfailures' status database under pytest-xdist).
IDLE_WAITS = {("socket.py", "accept"), ("selectors.py", "select"), ("selectors.py", "poll")}


def busy_threads() -> list[threading.Thread]:
    """Threads other than this one that are not idle in a known wait."""
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.ident is None:
            continue
        frame = frames.get(thread.ident)
        where = (os.path.basename(frame.f_code.co_filename), frame.f_code.co_name) if frame else None
        if where not in IDLE_WAITS:
            busy.append(thread)
    return busy


def start_method() -> str:
    """Fork, unless a thread runs here that might hold a lock the child would
    inherit held, or ``FLEET_START_METHOD=spawn`` asks for fresh interpreters."""
    chosen = os.environ.get("FLEET_START_METHOD")
    if chosen in ("fork", "spawn"):
        return chosen
    return "spawn" if busy_threads() else "fork"


def spawn_reason() -> str:
    """Why workers are spawned, for the end of the run."""
    if os.environ.get("FLEET_START_METHOD") == "spawn":
        return "FLEET_START_METHOD=spawn"
    names = ", ".join(sorted({t.name for t in busy_threads()}))
    return f"threads run in the controller ({names}), and a forked worker could inherit a lock one holds"


class LocalProcess:
    """A worker process on this machine: what the controller needs of it."""

    how = "crashed"  # what happened to it when it ended unasked

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.popen = popen

    def ended(self) -> str:
        """How it ended (it has: its pipe closed): ``signal 9 (SIGKILL)``."""
        return describe_exit(self.reap())

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self) -> int:
        """Wait for it to end, end what its tests left running in its process
        group (while its pid still holds the group's id), then reap it; its
        wait status."""
        try:
            if hasattr(os, "waitid"):
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = 0
        if self.popen is not None:
            self.popen.returncode = os.waitstatus_to_exitcode(status)
        return status


def fork_worker(start: Callable[[], NoReturn]) -> LocalProcess:
    """Fork; the child runs ``start`` (which never returns)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    pid = os.fork()
    if pid == 0:
        # The controller froze its objects so the fork shares their pages; the
        # worker sees them again, so gc.get_objects() (leak tests) counts what
        # a serial run counts.
        gc.unfreeze()
        start()
    return LocalProcess(pid)


def spawn_worker(
    config: pytest.Config, name: str, threads: int, make: bool, uid: str, count: int
) -> tuple[LocalProcess, Connection]:
    """Start ``python -m pytest`` with the run's arguments as worker ``name``.

    It collects on its own, says what it collected, and becomes a worker
    (:func:`fleet.execute.processes.worker.run_spawned`).
    """
    ours, theirs = socket.socketpair()
    params = config.invocation_params
    extra = [arg for args in adapters.gather(config, "spawn_arguments").values() for arg in args]
    env = dict(
        os.environ,
        FLEET_TESTRUNUID=uid,
        FLEET_WORKER_COUNT=str(count),
        **{SPAWNED: f"{name}:{theirs.fileno()}:{os.getpid()}:{threads}:{int(make)}"},
    )
    popen = subprocess.Popen(
        [sys.executable, "-m", "pytest", *(a for a in params.args if a not in CONTROLLER_ONLY_FLAGS), *extra],
        cwd=params.dir,
        env=env,
        pass_fds=[theirs.fileno()],
        stdin=subprocess.DEVNULL,
        process_group=0,  # a group of its own: what its tests start goes with it
    )
    theirs.close()
    return LocalProcess(popen.pid, popen), Connection(ours.detach())


def spawned_identity_present() -> bool:
    return bool(os.environ.get(SPAWNED))


def spawned_identity() -> tuple[str, int, int, int, bool] | None:
    """(name, connection fd, controller pid, threads, makes session fixtures) in a spawned worker."""
    raw = os.environ.pop(SPAWNED, None)
    if not raw:
        return None
    name, fd, controller, threads, make = raw.split(":")
    return name, int(fd), int(controller), int(threads), make == "1"


def quiet_if_spawned(config: pytest.Config) -> None:
    """A spawned worker writes no progress of its own: the controller does."""
    if spawned_identity_present():
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)


def collection_difference(name: str, mine: list[str], theirs: list[str] | None) -> str:
    """One line naming the first difference between two collections."""
    if theirs is None:
        return f"fleet: worker {name} did not report its collection (see its output above)"
    for index, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            return (
                f"fleet: worker {name} collected a different suite: test {index + 1} is "
                f"{b} there but {a} here (parametrize ids must not change between runs)"
            )
    return (
        f"fleet: worker {name} collected a different suite: {len(theirs)} tests there, "
        f"{len(mine)} here"
    )


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"signal {number} ({signal_name(number)})"
    return f"exit code {os.WEXITSTATUS(status)}"
