"""pytest-cov: the coverage of worker processes reaches the report.

pytest-cov measures in the process it started in and, at the end, combines
every data file of the run (``.coverage.*``) into its report. A worker forked
from the controller inherits the controller's measurement, which it would
never save: so each forked worker stops the inherited one and measures on
its own with the same settings (as pytest-cov's own xdist worker side does),
and saves its data file as it ends; a spawned worker, whose pytest-cov
started on its own, saves too, and appends to the run's data instead of
erasing it. The controller's pytest-cov, not in its xdist mode, gets none of
xdist's hooks.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

PLUGIN = "_cov"


def _controller(config: pytest.Config) -> Any:
    plugin = config.pluginmanager.get_plugin(PLUGIN)
    return getattr(plugin, "cov_controller", None)


def configure(config: pytest.Config, processes: bool) -> None:
    pass


def runs_alone(config: pytest.Config) -> dict[str, str]:
    """``--cov-context=test`` switches coverage's one context per process: a
    test beside another on a thread would take its lines."""
    if getattr(config.option, "cov_context", None) == "test" and _controller(config) is not None:
        return {"pytest-cov": "pytest-cov --cov-context=test: one coverage context per process"}
    return {}


def not_xdist_ready(config: pytest.Config) -> dict[str, Any]:
    controller = _controller(config)
    if controller is None or type(controller).__name__ == "DistMaster":
        return {}
    return {"pytest-cov": config.pluginmanager.get_plugin(PLUGIN)}


def spawn_arguments(config: pytest.Config) -> dict[str, list[str]]:
    return {"pytest-cov": ["--cov-append"]} if _controller(config) is not None else {}


def worker_started(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(PLUGIN)
    controller = _controller(config)
    if controller is None or getattr(controller, "cov", None) is None:
        return
    if getattr(plugin, "pid", os.getpid()) == os.getpid():
        return  # a spawned worker: its pytest-cov measures this process already
    import coverage

    controller.cov.stop()
    measuring = coverage.Coverage(
        source=controller.cov_source,
        branch=controller.cov_branch,
        data_suffix=True,
        config_file=controller.cov_config,
    )
    measuring.start()
    controller.cov = measuring


def worker_finishing(config: pytest.Config, made: list[Any]) -> None:
    controller = _controller(config)
    if controller is not None and getattr(controller, "cov", None) is not None:
        controller.cov.stop()
        controller.cov.save()
