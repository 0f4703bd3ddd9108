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
    if not isinstance(data, dict):
        raise pytest.UsageError(f"fleet: {CONFIG_FILE}: expected a mapping of environments")
    known = [str(k) for k, v in data.items() if isinstance(v, dict)]
    name = chosen or data.get("env")
    if not name:
        raise pytest.UsageError(
            f"fleet: {CONFIG_FILE} names no current environment ('env: NAME'); pass --env "
            f"(known: {', '.join(known)})"
        )
    section = data.get(name)
    if not isinstance(section, dict):
        source = f"--env {name}" if chosen else f"env: {name} in {CONFIG_FILE}"
        raise pytest.UsageError(f"fleet: {source} is not an environment in {CONFIG_FILE} (known: {', '.join(known)})")
    return Environment(str(name), section)


env_key = pytest.StashKey[Environment]()


def environment(config: pytest.Config) -> Environment:
    """Loaded once per run, on first use."""
    if env_key not in config.stash:
        config.stash[env_key] = load(config)
    return config.stash[env_key]


@pytest.fixture(scope="session")
def fleet_env(request: pytest.FixtureRequest) -> Environment:
    """The chosen section of conf/config.yaml, read-only, with ``.name``."""
    return environment(request.config)
