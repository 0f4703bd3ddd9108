"""pytest-html: each test's extras stay that test's, on threads too.

pytest-html's ``extras`` fixture keeps one list for the whole run, in
``config.stash``, and copies it onto each test's call report; tests running
side by side would share it. While fleet runs in parallel, ``extras`` (and
the older ``extra``) keep the list on the test's own item, and the test's
call report gets it in front of what other plugins put there, as pytest-html
would have.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

PLUGIN = "html"

_extras_key = pytest.StashKey[list]()


class PerTestExtras:
    @pytest.fixture
    def extras(self, request: pytest.FixtureRequest) -> Iterator[list]:
        own = request.node.stash[_extras_key] = []
        yield own
        del own[:]

    @pytest.fixture
    def extra(self, request: pytest.FixtureRequest) -> Iterator[list]:
        own = request.node.stash[_extras_key] = []
        yield own
        del own[:]

    @pytest.hookimpl(tryfirst=True, wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Any:
        report = yield
        own = item.stash.get(_extras_key, None)
        if report.when == "call" and own:
            report.extras = list(own) + list(getattr(report, "extras", []))
        return report


def configure(config: pytest.Config, processes: bool) -> None:
    config.pluginmanager.register(PerTestExtras(), "fleet-html-extras")
