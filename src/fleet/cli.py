"""The ``fleet`` command. For now a thin front: ``fleet ARGS`` is ``pytest ARGS``."""

from __future__ import annotations

import pytest


def main() -> int:
    return pytest.console_main()
