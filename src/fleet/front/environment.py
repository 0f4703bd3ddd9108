"""The project's environments: ``conf/config.yaml`` (aomaker's layout).

::

    env: mock            # the current environment
    mock:
      host: http://127.0.0.1:8000
    test:
      host: https://test.example.com

``--fleet-env NAME`` (``fleet --env NAME``) picks another section for this run
only: the file is never written. Tests read the section through the
``fleet_env`` fixture, a read-only mapping with the section's name as
``.name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator

import pytest

from fleet.front.yamlfile import load_yaml

CONFIG_FILE = "conf/config.yaml"


class Environment(Mapping):
    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        self.name = name
        self._values = MappingProxyType(dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Environment({self.name!r}, {dict(self._values)!r})"


def load(config: pytest.Config) -> Environment:
    """The chosen environment; a usage error naming what is wrong otherwise."""
    chosen = config.getoption("fleet_env")
    path = Path(config.rootpath) / CONFIG_FILE
    given = f"--env {chosen}: " if chosen else ""
    if not path.is_file():
        raise pytest.UsageError(f"fleet: {given}{CONFIG_FILE} not found in {config.rootpath}")
    data = load_yaml(path, CONFIG_FILE)
    if data is None:
        raise pytest.UsageError(
            f"fleet: {CONFIG_FILE} is empty; expected 'env: NAME' and a section per environment"
        )
    if not isinstance(data, dict):
        raise pytest.UsageError(
            f"fleet: {CONFIG_FILE}: expected a mapping of environments, not {type(data).__name__}"
        )
    known = [str(k) for k, v in data.items() if k != "env" and isinstance(v, dict)]
    listed = f"known: {', '.join(known)}" if known else "it has no environment sections"
    current = data.get("env")
    if current is not None and not isinstance(current, (str, int)):
        raise pytest.UsageError(
            f"fleet: {CONFIG_FILE}: env: must name an environment section, not {type(current).__name__} "
            f"{current!r}"[:200]
        )
    name = chosen or (None if current is None else str(current))
    if not name:
        raise pytest.UsageError(
            f"fleet: {CONFIG_FILE} names no current environment ('env: NAME'); pass --env ({listed})"
        )
    sections = {str(k): v for k, v in data.items() if k != "env"}
    source = f"--env {name}" if chosen else f"{CONFIG_FILE}: env: {name}"
    if name not in sections:
        if chosen:
            raise pytest.UsageError(f"fleet: --env {name} is not an environment in {CONFIG_FILE} ({listed})")
        raise pytest.UsageError(f"fleet: {source} is not one of its environments ({listed})")
    section = sections[name]
    if section is None:
        section = {}  # `test:` with nothing under it: an environment with no settings
    if not isinstance(section, dict):
        raise pytest.UsageError(
            f"fleet: {source}: section {name!r} is a {type(section).__name__}, expected a mapping of settings"
        )
    return Environment(str(name), section)


env_key = pytest.StashKey[Environment]()


def environment(config: pytest.Config) -> Environment:
    """Loaded once per run, on first use."""
    if env_key not in config.stash:
        config.stash[env_key] = load(config)
    return config.stash[env_key]


def pytest_collection_finish(session: pytest.Session) -> None:
    """A test that uses ``fleet_env``: conf/config.yaml is checked before any test runs."""
    if any("fleet_env" in getattr(item, "fixturenames", ()) for item in session.items):
        environment(session.config)


@pytest.fixture(scope="session")
def fleet_env(request: pytest.FixtureRequest) -> Environment:
    """The chosen section of conf/config.yaml, read-only, with ``.name``."""
    return environment(request.config)
