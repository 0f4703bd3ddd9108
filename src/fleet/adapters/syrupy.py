"""syrupy: snapshots asserted in worker processes count in the controller's report.

syrupy keeps each run's snapshot assertions and queued writes in the process
that ran the test, and at the end works out which snapshots were unused (and,
with ``--snapshot-update``, deletes them). Under pytest-xdist its workers
publish their part in ``workeroutput`` and the controller merges them; fleet's
workers do the same as they end (with ``PYTEST_XDIST_WORKER`` set, syrupy's
``finish`` publishes instead of judging), and the controller merges each one.
A worker that died took its part with it: then nothing is reported unused,
and nothing deleted.
"""

from __future__ import annotations

from typing import Any

import pytest

PLUGIN = "syrupy"


def configure(config: pytest.Config, processes: bool) -> None:
    pass


def worker_finishing(config: pytest.Config, made: list[Any]) -> None:
    session = getattr(config, "_syrupy", None)
    if session is not None:
        session.finish()


def node_down(config: pytest.Config, node: Any, error: Any) -> None:
    session = getattr(config, "_syrupy", None)
    if session is None:
        return
    if error is not None:
        config.option.disable_unused_snapshots = True
        return
    if any(type(p).__name__ == "DeferXDist" for p in config.pluginmanager.get_plugins()):
        return  # pytest-xdist is loaded: syrupy's own hook took the report
    output = getattr(node, "workeroutput", {})
    report = output.get("syrupy_report")
    if report is not None:
        session.add_worker_report(report)
    written = output.get("syrupy_write_sidecars")
    if written:
        session.add_written_snapshot_locations(written)
