"""The run's one login: asked once, in the controller; every test shares the headers.

A login object (``main_run(login=...)``, or a project's ``pytest_fleet_login``
hook) has ``login()`` and ``make_headers()`` called once; tests read the
headers through the ``fleet_login`` fixture. Worker processes inherit them
(forked) or are sent them (spawned).
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Sequence

import pytest

login_key = pytest.StashKey[Any]()


class LoginPlugin:
    """Answers ``pytest_fleet_login`` with the object given to main_run."""

    def __init__(self, login: Any) -> None:
        self._login = login

    def pytest_fleet_login(self, config: pytest.Config) -> Any:
        return self._login


_login_lock = threading.Lock()


_login_object_key = pytest.StashKey[Any]()
NO_LOGIN = (
    "fleet: fleet_login needs a login object: pass login= to main_run, "
    "or return one from a pytest_fleet_login(config) hook"
)


def _login_object(config: pytest.Config) -> Any:
    """The run's login object (asked of ``pytest_fleet_login`` once), or None."""
    if _login_object_key not in config.stash:
        config.stash[_login_object_key] = config.hook.pytest_fleet_login(config=config)
    return config.stash[_login_object_key]


def check_login_provided(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """Tests that use ``fleet_login`` with nothing to log in with: bad input,
    refused before any test runs."""
    if any("fleet_login" in getattr(item, "fixturenames", ()) for item in items) and _login_object(config) is None:
        raise pytest.UsageError(NO_LOGIN)


def login_headers(config: pytest.Config) -> Any:
    """Log in once for the whole run and return the headers every test shares."""
    with _login_lock:
        if login_key not in config.stash:
            login = _login_object(config)
            if login is None:
                raise pytest.UsageError(NO_LOGIN)
            response = login.login()
            wants_response = len(inspect.signature(login.make_headers).parameters) > 0
            config.stash[login_key] = (
                login.make_headers(response) if wants_response else login.make_headers()
            )
        return config.stash[login_key]


def log_in_before_forking(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """Worker processes inherit the controller's login: log in here, once, first.

    A failure is left to the tests that use ``fleet_login``, which report it.
    """
    if any("fleet_login" in getattr(item, "fixturenames", ()) for item in items):
        try:
            login_headers(config)
        except Exception:
            pass


@pytest.fixture(scope="session")
def fleet_login(request: pytest.FixtureRequest) -> Any:
    """The headers of the run's one login."""
    return login_headers(request.config)
