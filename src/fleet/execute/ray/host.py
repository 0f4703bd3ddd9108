"""On a Ray node: the host of one worker process.

:class:`WorkerHost` is a Ray actor (one per worker, holding one CPU) in the
shipped copy of the rootdir. It starts the worker as a spawned worker, a
fresh ``python -m pytest`` with the run's arguments, exactly as on one
machine, and relays the wire's messages between it and the controller
without reading them: the controller's arrive through :meth:`deliver`, the
worker's leave through :meth:`poll`, which waits until there is something
and returns everything there is, so tests finishing together cost one call.
The worker's stdout and stderr come back the same way, in whole lines.

The worker is the actor's child in a process group of its own: it dies with
the actor (``PR_SET_PDEATHSIG``, as with any spawned worker), and
:meth:`stop` ends it and what its tests started. When it ends, :meth:`poll`
says how (a wait status), after the last of its messages.

This module is imported on the nodes, and by the controller only once
``--ray`` is given; it imports nothing of fleet's run.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from fleet.execute.processes.launch import SPAWNED

# A chunk of output sent before its line ends, when a line grows this long.
LONGEST_LINE = 64 * 1024
# In the worker's arguments: a directory on its node whose files go back to the
# controller (``--alluredir=`` this: Allure results written where the test ran).
SHIPPED_DIRECTORY = "{fleet-shipped-directory}"
# A shipped file is sent once it has not changed for this long (or the worker ended).
SETTLED = 1.0


def versions() -> dict[str, str]:
    """What a node must share with the controller to run its tests."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"Python": platform.python_version(), "pytest": version("pytest")}


class WorkerHost:
    def __init__(self) -> None:
        self._inbox: deque[bytes] = deque()  # the worker's messages, as written
        self._output: deque[tuple[int, bytes]] = deque()  # (1 or 2, whole lines)
        self._status: int | None = None  # the worker's wait status, once it ended
        self._popen: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._outbox: deque[bytes | None] = deque()
        self._delivered = 0  # messages delivered so far, in the controller's order
        self._early: dict[int, bytes] = {}  # delivered ahead of one before them
        self._outbox_ready = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._news: asyncio.Event | None = None
        self._readers: list[threading.Thread] = []
        self._shipped_from: str | None = None
        self._shipped: dict[str, float] = {}  # file -> its mtime when sent

    def describe(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        return {
            "node": context.get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            **versions(),
        }

    async def start(
        self, name: str, args: list[str], cwd: str, environment: dict[str, str], threads: int, make: bool
    ) -> None:
        """Start the worker: ``python -m pytest ARGS`` in ``cwd`` under the shipped rootdir."""
        self._loop = asyncio.get_running_loop()
        self._news = asyncio.Event()
        ours, theirs = socket.socketpair()
        env = dict(os.environ, **environment)
        env["FLEET_NODE"] = self.describe()["node"]  # the Ray node it runs on
        env[SPAWNED] = f"{name}:{theirs.fileno()}:{os.getpid()}:{threads}:{int(make)}"
        if any(SHIPPED_DIRECTORY in arg for arg in args):
            self._shipped_from = tempfile.mkdtemp(prefix="fleet-shipped-")
            args = [arg.replace(SHIPPED_DIRECTORY, self._shipped_from) for arg in args]
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "pytest", *args],
            cwd=os.path.join(os.getcwd(), cwd),
            env=env,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # a group of its own: what its tests start goes with it
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._readers = [
            threading.Thread(target=self._read_output, args=(stream, pipe), daemon=True)
            for stream, pipe in ((1, self._popen.stdout), (2, self._popen.stderr))
        ]
        for thread in [*self._readers, *(threading.Thread(target=t, daemon=True) for t in (self._read_messages, self._write_messages))]:
            thread.start()

    async def deliver(self, number: int, data: bytes) -> None:
        """The controller's message ``number`` (0, 1, ...), pickled there, for the
        worker; messages go on in the controller's order whatever order the
        calls run in."""
        self._early[number] = data
        with self._outbox_ready:
            while self._delivered in self._early:
                self._outbox.append(self._early.pop(self._delivered))
                self._delivered += 1
            self._outbox_ready.notify()

    async def poll(
        self, timeout: float
    ) -> tuple[list[bytes], list[tuple[int, bytes]], int | None, list[tuple[str, bytes]]]:
        """Everything the worker sent since the last call (waiting up to ``timeout``
        for something): its message batches, its output, its wait status once it
        has ended and everything before that is out, and the files it wrote in
        the shipped directory since the last call (once they settled)."""
        assert self._news is not None
        if not (self._inbox or self._output or self._status is not None):
            try:
                await asyncio.wait_for(self._news.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        self._news.clear()
        batches = [self._inbox.popleft() for _ in range(len(self._inbox))]
        output = [self._output.popleft() for _ in range(len(self._output))]
        status = self._status if not (self._inbox or self._output) else None
        return batches, output, status, self._new_files(final=status is not None)

    def _new_files(self, final: bool) -> list[tuple[str, bytes]]:
        if self._shipped_from is None:
            return []
        found = []
        now = time.time()
        for entry in os.scandir(self._shipped_from):
            if not entry.is_file() or self._shipped.get(entry.name) == entry.stat().st_mtime:
                continue
            mtime = entry.stat().st_mtime
            if final or now - mtime >= SETTLED:
                with open(entry.path, "rb") as file:
                    found.append((entry.name, file.read()))
                self._shipped[entry.name] = mtime
        if final:
            shutil.rmtree(self._shipped_from, ignore_errors=True)
            self._shipped_from = None
        return found

    def stop(self) -> None:
        """End the worker and everything in its process group, at once."""
        if self._popen is not None:
            try:
                os.killpg(self._popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # -- threads ---------------------------------------------------------------

    def _tell(self) -> None:
        if self._loop is not None and self._news is not None:
            self._loop.call_soon_threadsafe(self._news.set)

    def _read_messages(self) -> None:
        assert self._conn is not None and self._popen is not None
        while True:
            try:
                self._inbox.append(self._conn.recv_bytes())
            except (EOFError, OSError):
                break
            self._tell()
        for reader in self._readers:  # its output, all of it, before its end
            reader.join()
        self.stop()  # what its tests left running goes with it
        self._status = _wait_status(self._popen.wait())
        with self._outbox_ready:
            self._outbox.append(None)
            self._outbox_ready.notify()
        self._tell()

    def _read_output(self, stream: int, pipe: Any) -> None:
        pending = b""
        while True:
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            cut = pending.rfind(b"\n") + 1 if len(pending) < LONGEST_LINE else len(pending)
            if cut:
                self._output.append((stream, pending[:cut]))
                pending = pending[cut:]
                self._tell()
        if pending:
            self._output.append((stream, pending))
            self._tell()

    def _write_messages(self) -> None:
        """Messages go to the worker in the order they came, however long it takes
        it to read them (a large one while it is still collecting)."""
        assert self._conn is not None
        while True:
            with self._outbox_ready:
                self._outbox_ready.wait_for(lambda: self._outbox)
                data = self._outbox.popleft()
            if data is None:
                return
            try:
                self._conn.send_bytes(data)
            except OSError:
                return


def _wait_status(returncode: int) -> int:
    """``Popen.returncode`` as the wait status ``os.waitpid`` would have given."""
    return -returncode if returncode < 0 else returncode << 8
