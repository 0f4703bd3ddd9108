"""The controller's side of one worker on a Ray node.

To the controller a remote worker is a spawned worker with a connection
(:class:`RemoteProcess` stands for the process, :class:`RayConnection` for
the pipe), so everything it does with local workers it does with these.
Underneath, a *bridge* thread per worker long-polls the worker's host actor
(:class:`fleet.execute.ray.host.WorkerHost`): each call returns every batch
of messages the worker wrote since the last one, and the bridge writes them,
as they were written, into a local pipe the controller waits on beside its
other workers'. Its output goes to this process's stdout and stderr. The
controller's messages go out as actor calls, numbered so the host keeps
their order. When the worker ends, or Ray says its actor or its node died,
the bridge closes the pipe: the controller sees the worker gone, as it sees
a local worker's pipe close, and asks :meth:`RemoteProcess.ended` why.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from multiprocessing import Pipe
from typing import Any, Callable

from fleet.execute.processes.launch import describe_exit

# How long one poll waits for the worker to say something.
POLL_WAIT = 30.0
# How long a new worker may wait for its node to start it (a free CPU, its
# runtime environment unpacked) before it counts as lost.
PLACEMENT_TIMEOUT = 120.0
# How long to wait for the bridge once a worker is told to end.
REAP_WAIT = 10.0


class RemoteProcess:
    """A worker process on a Ray node: what the controller needs of it
    (``kill``, ``reap``, ``ended``, and ``how`` it ended)."""

    def __init__(
        self,
        actor: Any,
        start: dict[str, Any],
        refusal: Callable[[dict[str, Any]], str | None],
        node_alive: Callable[[str], bool],
        shipped_to: str | None = None,
    ) -> None:
        self.actor = actor
        self.shipped_to = shipped_to  # where the files of the worker's shipped directory go
        self.info: dict[str, Any] | None = None  # from the host: node, ip, versions
        self.how = "crashed"
        self.cause = "it ended"
        self._start = start
        self._refusal = refusal
        self._node_alive = node_alive
        self._started = threading.Event()
        self._sent = 0
        self._reader, self._writer = Pipe(duplex=False)
        self.conn = RayConnection(self, self._reader)
        self._thread = threading.Thread(target=self._bridge, name="fleet-ray-bridge", daemon=True)
        self._thread.start()

    # -- the controller's side ---------------------------------------------------

    def deliver(self, message: tuple[Any, ...]) -> None:
        self.deliver_pickled(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def deliver_pickled(self, data: Any) -> None:
        """A pickled message, or a Ray object reference to one (a large payload
        put once in the object store for every worker)."""
        self.actor.deliver.remote(self._sent, data)
        self._sent += 1

    def kill(self) -> None:
        """End the worker at once (a timeout, the end of the run)."""
        if self._started.is_set():
            self.actor.stop.remote()
        else:
            self._kill_actor()

    def ended(self) -> str:
        """Why it ended (it has: its pipe closed); its actor is gone from then on."""
        self._thread.join(REAP_WAIT)
        self._kill_actor()
        return self.cause

    def reap(self) -> str:
        return self.ended()

    def _kill_actor(self) -> None:
        import ray

        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:
            pass

    # -- the bridge thread -------------------------------------------------------

    def _put(self, messages: list[tuple[Any, ...]]) -> None:
        self._writer.send(messages)

    def _bridge(self) -> None:
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError

        try:
            try:
                self.info = ray.get(self.actor.describe.remote(), timeout=PLACEMENT_TIMEOUT)
            except GetTimeoutError:
                self.how, self.cause = "lost", f"no node started it within {PLACEMENT_TIMEOUT:g}s"
                return
            self._put([("host", self.info)])
            problem = self._refusal(self.info)
            if problem:
                self._put([("refused", problem)])
                return
            ray.get(self.actor.start.remote(**self._start))
            self._started.set()
            while True:
                try:
                    batches, output, status, files = ray.get(self.actor.poll.remote(POLL_WAIT))
                except ActorUnavailableError:
                    time.sleep(1.0)  # Ray may yet reach it, or declare it dead
                    continue
                for data in batches:
                    self._writer.send_bytes(data)
                for stream, text in output:
                    _write(stream, text)
                for name, data in files:
                    self._keep(name, data)
                if status is not None:
                    self.cause = describe_exit(status)
                    return
        except RayActorError as error:
            self.how, self.cause = "lost", self._death(error)
        except RayError as error:
            self.how, self.cause = "lost", f"Ray failed: {type(error).__name__}: {_first_line(error)}"
        except Exception as error:  # the controller's end of the pipe is gone
            self.how, self.cause = "lost", f"{type(error).__name__}: {_first_line(error)}"
        finally:
            self._writer.close()

    def _keep(self, name: str, data: bytes) -> None:
        if self.shipped_to is not None:
            os.makedirs(self.shipped_to, exist_ok=True)
            with open(os.path.join(self.shipped_to, os.path.basename(name)), "wb") as file:
                file.write(data)

    def _death(self, error: BaseException) -> str:
        node = (self.info or {}).get("node")
        try:
            if node and not self._node_alive(node):
                return "node died"
        except Exception:
            pass
        text = str(error)
        if getattr(error, "_actor_init_failed", False) or "creation task" in text:
            return f"its Ray actor could not start ({_last_line(text)})"
        if "ray.kill" in text:
            return "its Ray actor was killed"
        return "its Ray worker process died"


class RayConnection:
    """The controller's connection to a remote worker: it waits on and reads a
    local pipe; what it sends goes out as actor calls."""

    def __init__(self, process: RemoteProcess, reader: Any) -> None:
        self._process = process
        self._reader = reader

    def fileno(self) -> int:
        return self._reader.fileno()

    def poll(self, timeout: float = 0.0) -> bool:
        return self._reader.poll(timeout)

    def recv(self) -> Any:
        return self._reader.recv()

    def send(self, message: tuple[Any, ...]) -> None:
        self._process.deliver(message)

    def close(self) -> None:
        self._reader.close()


def _write(stream: int, text: bytes) -> None:
    try:
        os.write(stream, text)
    except OSError:
        pass


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
