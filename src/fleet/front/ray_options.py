"""``--ray ADDRESS``: which Ray cluster a run uses, read and checked.

The option, and the ini keys ``ray_address`` and ``ray_excludes``, are
declared by :func:`fleet.front.options.add_options` through :func:`add`; the
address is checked at configure with every other value (:func:`address`).
Nothing here imports Ray: a run that does not ask for it never does.

``--ray`` given without a value takes ``RAY_ADDRESS``, else the ini's
``ray_address``, else ``auto``. An address is ``auto`` (the cluster ``ray
start`` made on this machine), ``local`` (a throwaway one started for the run
and stopped at its end), ``HOST:PORT`` (a cluster's head) or
``ray://HOST[:PORT]`` (Ray Client, port 10001 by default).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any, Callable

import pytest

INSTALL = 'pip install "pytest-fleet[ray]"'
ADDRESS_VARIABLE = "RAY_ADDRESS"
KEYWORDS = ("auto", "local")
EXPECTED = "auto, local, HOST:PORT or ray://HOST:10001"

# HOST:PORT, where HOST is a name, an IPv4 address or [an IPv6 address]
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$")
_CLIENT = re.compile(r"^ray://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(:(\d{1,5}))?$")


def add(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--ray",
        dest="fleet_ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the worker processes on a Ray cluster: auto (the one `ray start` made here), "
        "local (a throwaway one for this run), HOST:PORT or ray://HOST:10001; without a value: "
        f"${ADDRESS_VARIABLE}, else the ray_address ini option, else auto. Needs {INSTALL}.",
    )
    parser.addini("ray_address", "fleet: the Ray cluster --ray uses when given without a value.")
    parser.addini(
        "ray_excludes",
        "fleet: paths (.gitignore patterns) under the rootdir not shipped to Ray nodes, "
        "beyond what .gitignore leaves out.",
        type="linelist",
    )


def _valid(value: str) -> bool:
    if value in KEYWORDS:
        return True
    match = _HOST_PORT.match(value) or _CLIENT.match(value)
    if match is None:
        return False
    port = match.group(2) if match.re is _HOST_PORT else (match.group(3) or "10001")
    return 0 < int(port) < 65536


def _looks_like_path(value: str) -> bool:
    if value.startswith("ray://"):
        return False
    return "/" in value or value.endswith(".py") or "::" in value or Path(value).exists()


def address(config: pytest.Config, take_back_path: Callable[[pytest.Config, str], None]) -> str | None:
    """The Ray address this run uses, checked; None when ``--ray`` is not given.

    ``pytest --ray tests/``: argparse took the path for the address; it goes
    back to pytest's paths and the address is found as if none were given.
    """
    raw = config.getoption("fleet_ray", None)
    if raw is None:
        return None
    value = str(raw).strip()
    where = f"--ray {raw}"
    if value and not _valid(value) and _looks_like_path(value) and f"--ray={raw}" not in map(str, config.invocation_params.args):
        take_back_path(config, value)
        value = ""
    if not value:
        value = os.environ.get(ADDRESS_VARIABLE, "").strip()
        where = f"{ADDRESS_VARIABLE}={value}"
    if not value:
        value = str(config.getini("ray_address") or "").strip()
        where = f"ray_address = {value} in the ini file"
    if not value:
        value = "auto"
    if not _valid(value):
        raise pytest.UsageError(f"fleet: {where}: a Ray address is {EXPECTED}, not {value!r}")
    return value


def check_installed() -> None:
    """Ray is an extra: without it, one line saying what to install."""
    if importlib.util.find_spec("ray") is None:
        raise pytest.UsageError(f"fleet: --ray runs tests on a Ray cluster, and Ray is not installed here: {INSTALL}")


def excludes(config: pytest.Config) -> list[str]:
    """The ini's ``ray_excludes``: patterns as ``.gitignore`` writes them."""
    patterns = [str(line).strip() for line in config.getini("ray_excludes")]
    return [p for p in patterns if p and not p.startswith("#")]
