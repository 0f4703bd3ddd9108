"""Adapters: what fleet does so that a plugin people use works in every mode.

An adapter is one module in this package, named in :data:`ADAPTERS`, with:

``PLUGIN``
    the name pytest's plugin manager knows the plugin by. fleet looks the
    plugin up by that name and never imports it (nor anything of its own
    that imports it) unless the plugin is loaded in this run, so fleet works
    fully without it.
``configure(config, processes)``
    called at configure, when the plugin is loaded and the run is parallel
    (``processes``: worker processes run), before any test runs or worker
    starts. It makes the plugin correct for the mode, or refuses the run
    with one line (``pytest.UsageError``).
``watch(config, monitor, items)``, ``worker_finishing(config, made)``, ...
    optional event handlers; fleet's stages call :func:`notify` with the
    event's name, and each loaded adapter that has a function of that name
    gets it. These events are the only way a stage reaches an adapter.

A new adapter is one new module here and its name in :data:`ADAPTERS`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest

ADAPTERS = ("allure", "rerunfailures", "metadata", "coverage", "syrupy", "timeout", "django", "randomly", "order", "html", "json_report", "benchmark", "stepwise", "asyncio")

_loaded_key = pytest.StashKey[list[ModuleType]]()


def configure(config: pytest.Config, processes: bool) -> None:
    """Configure the adapters of the plugins loaded in this run."""
    loaded = []
    for name in ADAPTERS:
        module = importlib.import_module(f"{__name__}.{name}")
        if config.pluginmanager.get_plugin(module.PLUGIN) is not None:
            module.configure(config, processes)
            loaded.append(module)
    config.stash[_loaded_key] = loaded


def notify(config: pytest.Config, event: str, **kwargs: Any) -> None:
    """Tell each loaded adapter that handles ``event``."""
    for module in config.stash.get(_loaded_key, ()):
        handler = getattr(module, event, None)
        if handler is not None:
            handler(config, **kwargs)


def gather(config: pytest.Config, event: str, **kwargs: Any) -> dict[str, Any]:
    """Ask each loaded adapter that handles ``event`` for a mapping; all of them, merged."""
    merged: dict[str, Any] = {}
    for module in config.stash.get(_loaded_key, ()):
        handler = getattr(module, event, None)
        if handler is not None:
            merged.update(handler(config, **kwargs) or {})
    return merged
