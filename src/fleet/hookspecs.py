"""Hooks fleet adds to pytest, for a project's conftest.py or plugins."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import pytest


@pytest.hookspec(firstresult=True)
def pytest_fleet_units(
    config: pytest.Config, items: Sequence[pytest.Item]
) -> Mapping[pytest.Item, Hashable | Sequence[Hashable]] | None:
    """Divide the selected tests into units yourself.

    Return a mapping from test item to a unit name (or a list of names): the
    tests of one unit run one after another, in collection order, units run
    side by side. Tests left out of the mapping belong to no unit and run
    whenever a worker is free. Return None to let fleet divide as usual.

    Consulted when no ``--dist-*`` option is given; it takes the place of
    the strategy file and of ``--group-unit``. For example, one unit per
    top-level directory::

        def pytest_fleet_units(config, items):
            return {i: i.path.relative_to(config.rootpath).parts[0] for i in items}
    """


@pytest.hookspec(firstresult=True)
def pytest_fleet_login(config: pytest.Config) -> object | None:
    """Return the run's login object: fleet calls its ``login()`` and then
    ``make_headers()`` (given the login's result if it takes an argument) once,
    in the controller, and every test reads the headers through the
    ``fleet_login`` fixture. ``main_run(login=...)`` answers this hook too.
    """
