"""pytest-metadata (pytest-html's): the worker's metadata goes back in ``workeroutput``.

Its controller side merges ``node.workeroutput["metadata"]``, which its worker
side puts there when ``pytest_configure`` runs in an xdist worker; fleet's
workers are forked from the configured controller, so this does it for them.
"""

from __future__ import annotations

from typing import Any

import pytest

PLUGIN = "metadata"


def configure(config: pytest.Config, processes: bool) -> None:
    pass


def worker_finishing(config: pytest.Config, made: list[Any]) -> None:
    from pytest_metadata.plugin import metadata_key

    output = getattr(config, "workeroutput", None)
    if output is not None and metadata_key in config.stash:
        output["metadata"] = dict(config.stash[metadata_key])
