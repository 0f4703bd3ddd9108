"""The run's Ray cluster: joined (or started, for ``--ray local``) at configure,
left at the end.

Joining uploads the rootdir as the job's runtime environment
(``working_dir``): Ray packs it once, leaving out what ``.gitignore`` files
and the ini's ``ray_excludes`` name, keys the package by its content (an
unchanged tree is not sent again), and unpacks it on each node before a
worker starts there. Nothing else of the controller's file system reaches a
node. A failure to join is one line naming the address (exit code 4).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Never shipped: version control, and bytecode a node makes for itself.
ALWAYS_EXCLUDED = [".git", "__pycache__", "*.pyc"]
# How long joining a cluster may take before it counts as unreachable.
CONNECT_TIMEOUT = 60


@dataclass
class Node:
    """One alive node, as the run sees it."""

    id: str
    ip: str
    cpus: int


class Cluster:
    def __init__(self, address: str, started_here: bool) -> None:
        self.address = address
        self.started_here = started_here  # --ray local: stopped at the end

    def nodes(self) -> list[Node]:
        """The alive nodes, the controller's first."""
        import ray

        here = ray.get_runtime_context().get_node_id()
        found = [
            Node(entry["NodeID"], entry["NodeManagerAddress"], int(entry.get("Resources", {}).get("CPU", 0)))
            for entry in ray.nodes()
            if entry.get("Alive")
        ]
        return sorted(found, key=lambda node: node.id != here)

    def alive(self, node_id: str) -> bool:
        import ray

        return any(entry["NodeID"] == node_id and entry.get("Alive") for entry in ray.nodes())

    def cpus(self) -> int:
        """CPUs the cluster offers this run: those no one else holds now."""
        import ray

        return max(1, int(ray.available_resources().get("CPU", 0)))

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def runtime_env(rootpath: Path, excludes: list[str]) -> dict[str, Any]:
    return {"working_dir": str(rootpath), "excludes": ALWAYS_EXCLUDED + excludes}


def rays_temp_dir() -> Path:
    """Where Ray keeps its sessions on this machine by default (as Ray finds it)."""
    if "RAY_TMPDIR" in os.environ:
        base = os.environ["RAY_TMPDIR"]
    elif sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        base = os.environ["TMPDIR"]
    else:
        base = "/tmp" if sys.platform.startswith(("linux", "darwin")) else tempfile.gettempdir()
    return Path(base, "ray").resolve()


def check_shippable(where: str, rootpath: Path) -> None:
    """Refuse a rootdir that holds Ray's own files: Ray packs the package in its
    session directory, so it would pack its own growing zip into itself (a
    ``--ray`` run whose rootdir was ``/tmp`` wrote 73 GB before the disk filled).
    pytest takes such a rootdir when no ini file is found and an option's value
    is a path (``--timeline /tmp/trace.json``)."""
    temp = rays_temp_dir()
    root = Path(rootpath).resolve()
    if temp == root or root in temp.parents:
        raise pytest.UsageError(
            f"{where}: the rootdir {root} holds Ray's own files ({temp}), which shipping it would pack too; "
            "give --rootdir, or put a pytest.ini in the project"
        )


def connect(address: str, rootpath: Path, excludes: list[str]) -> Cluster:
    """Join the cluster at ``address`` (start one for ``local``), shipping the rootdir."""
    where = f"fleet: --ray {address}"
    check_shippable(where, rootpath)
    import ray

    kwargs: dict[str, Any] = dict(
        runtime_env=runtime_env(rootpath, excludes),
        log_to_driver=False,  # the workers' output comes back through fleet, prefixed
        logging_level=logging.WARNING,
        namespace="fleet",
    )
    if address == "local":
        kwargs.update(address="local", include_dashboard=False)
    else:
        kwargs["address"] = address
    previous = os.environ.get("RAY_gcs_rpc_server_connect_timeout_s")
    os.environ.setdefault("RAY_gcs_rpc_server_connect_timeout_s", str(CONNECT_TIMEOUT))
    try:
        ray.init(**kwargs)
    except ConnectionError as error:
        raise pytest.UsageError(f"{where}: cannot join a Ray cluster there ({_first_line(error)})") from None
    except ValueError as error:  # the runtime environment: a rootdir too large to ship
        raise pytest.UsageError(f"{where}: cannot ship the rootdir {rootpath}: {_first_line(error)}") from None
    except Exception as error:
        raise pytest.UsageError(f"{where}: cannot join a Ray cluster there ({type(error).__name__}: {_first_line(error)})") from None
    finally:
        if previous is None:
            os.environ.pop("RAY_gcs_rpc_server_connect_timeout_s", None)
    return Cluster(address, started_here=address == "local")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
