"""pytest-django: a test database per worker process, and its teardown wherever it runs.

Worker processes carry ``config.workerinput["workerid"]``, so pytest-django
names each process's test database after it (``test_db_gw0``), as under
pytest-xdist. Tests that use the database run alone in their process under
threads (:mod:`fleet.plan.placement`: one database, settings object and
database blocker per process). What is left: Django's connection objects may
be used only by the thread that made them, and a worker process with threads
tears its session fixtures down on whichever thread ends last; so the
connections that made the test databases are marked shareable once they are
made.
"""

from __future__ import annotations

from typing import Any

import pytest

PLUGIN = "django"


class ShareableConnections:
    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        result = yield
        if fixturedef.argname == "django_db_setup":
            from django.db import connections

            for connection in connections.all():
                connection.inc_thread_sharing()
        return result


def configure(config: pytest.Config, processes: bool) -> None:
    config.pluginmanager.register(ShareableConnections(), "fleet-django-connections")
