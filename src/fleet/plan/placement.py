"""Placement: which tests run alone in their process (exclusive), and why.

Threads share one process: a test that changes process-wide state (module
attributes, ``os.environ``, the working directory, ``sys.stdout``,
``sys.modules``, logging) changes it for every test running beside it. Such
a test runs while no other test runs in its process when

* it says so: ``@pytest.mark.exclusive``;
* it is known to by construction: a doctest (it swaps ``sys.stdout`` and
  patches ``linecache``), or a test using a fixture in
  :data:`UNSAFE_FIXTURES` (directly or through another fixture), unless the
  project declares that fixture safe (ini ``thread_safe_fixtures``);
* an earlier run caught it changing process-wide state beside other tests
  (remembered in pytest's cache under :data:`CACHE_KEY`).

Between worker processes none of this matters: each runs one test at a time
unless it runs threads too.
"""

from __future__ import annotations

from collections import Counter
import pytest

from fleet import adapters
from fleet.state import internals
from fleet.state.session_fixtures import is_project_fixture

CACHE_KEY = "fleet/thread_unsafe"

# Fixture name -> why a test using it must run alone in its process.
UNSAFE_FIXTURES = {
    "capfd": "captures file descriptor 1 and 2, which every thread shares",
    "capfdbinary": "captures file descriptor 1 and 2, which every thread shares",
    "capteesys": "captures file descriptor 1 and 2, which every thread shares",
    "monkeypatch": "patches module attributes, os.environ, sys.path or the working directory for the whole process",
    "pytester": "runs pytest in-process: swaps sys.modules, sys.path, os.environ and the working directory",
    "testdir": "runs pytest in-process: swaps sys.modules, sys.path, os.environ and the working directory",
    "recwarn": "records warnings by process-wide filters, so another thread's warnings could land in it",
    "mocker": "pytest-mock patches module and class attributes for the whole process",
    "class_mocker": "pytest-mock patches module and class attributes for the whole process",
    "module_mocker": "pytest-mock patches module and class attributes for the whole process",
    "package_mocker": "pytest-mock patches module and class attributes for the whole process",
    "session_mocker": "pytest-mock patches module and class attributes for the whole process",
    "httpserver": "pytest-httpserver keeps one server whose expectations every test changes",
    "freezer": "pytest-freezer freezes the clock for the whole process",
    "time_machine": "time-machine moves the clock for the whole process",
    "requests_mock": "requests-mock patches requests' transport for the whole process",
    "httpx_mock": "pytest-httpx patches httpx's transport for the whole process",
    "respx_mock": "respx patches httpx's transport for the whole process",
    "settings": "pytest-django changes django.conf.settings for the whole process",
    "mailoutbox": "pytest-django's mail outbox is one list for the whole process",
    "benchmark": "pytest-benchmark times the test, which other tests running beside it would slow",
    "db": "pytest-django keeps one test database, settings object and database blocker per process",
    "transactional_db": "pytest-django keeps one test database, settings object and database blocker per process",
    "django_db_reset_sequences": "pytest-django keeps one test database per process",
    "django_db_serialized_rollback": "pytest-django keeps one test database per process",
    "live_server": "pytest-django's live server shares the process's test database",
    "anyio_backend": "anyio runs one test runner per process",
}

# Mark name -> why a test carrying it must run alone in its process.
UNSAFE_MARKS = {
    "django_db": "pytest-django keeps one test database, settings object and database blocker per process",
    # pytest-run-parallel's mark, which projects already put on such tests
    "thread_unsafe": "the project marks it unsafe beside other threads (pytest-run-parallel)",
}


def _doctest(item: pytest.Item) -> bool:
    return type(item).__name__ == "DoctestItem"


class Placement:
    def __init__(self, config: pytest.Config) -> None:
        declared = config.getini("thread_safe_fixtures") or []
        self.safe = {name for entry in declared for name in str(entry).split()}
        self.learned: dict[str, str] = {}
        cache = getattr(config, "cache", None)
        if cache is not None:
            remembered = cache.get(CACHE_KEY, {})
            if isinstance(remembered, dict):
                self.learned = {str(k): str(v) for k, v in remembered.items()}
        self._cache = cache
        self._rootpath = config.rootpath
        self.reasons: dict[str, str] = {}  # nodeid -> why it runs alone
        # a plugin that keeps per-test state process-wide puts every test alone
        self._everything = next(iter(adapters.gather(config, "runs_alone").values()), None)

    def exclusive(self, item: pytest.Item) -> bool:
        """Whether ``item`` runs alone in its process; the reason is kept."""
        reason = self._reason(item)
        if reason is not None:
            self.reasons[item.nodeid] = reason
        return reason is not None

    def _reason(self, item: pytest.Item) -> str | None:
        if item.get_closest_marker("exclusive") is not None:
            return "marked exclusive"
        if self._everything is not None:
            return self._everything
        if _doctest(item):
            return "a doctest: swaps sys.stdout and patches linecache"
        for name, why in UNSAFE_MARKS.items():
            if item.get_closest_marker(name) is not None:
                return f"marked {name}: {why}"
        name = self._unsafe_fixture(item)
        if name is not None:
            return f"uses {name}: {UNSAFE_FIXTURES[name]}"
        learned = self.learned.get(item.nodeid)
        if learned is not None:
            return f"an earlier run caught it: {learned}"
        return None

    def _unsafe_fixture(self, item: pytest.Item) -> str | None:
        """An unsafe fixture the test asks for itself, or through the project's
        own fixtures (a plugin's fixture that uses one only when asked to, such
        as pytest-django's autouse ones using monkeypatch, does not count)."""
        info = internals.fixture_info(item)
        if info is None:
            return None
        definitions = info.name2fixturedefs
        todo = list(info.initialnames)
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in UNSAFE_FIXTURES and name not in self.safe:
                return name
            for definition in definitions.get(name, ()):
                if is_project_fixture(definition, self._rootpath):
                    todo.extend(definition.argnames)
        return None

    def remember(self, caught: dict[str, str]) -> bool:
        """Tests caught changing process-wide state: placed alone from the next
        run on (False: nothing to remember, or no cache to remember it in)."""
        if not caught or self._cache is None:
            return False
        merged = dict(self.learned)
        merged.update(caught)
        self._cache.set(CACHE_KEY, merged)
        return True

    def summary(self, threads: bool) -> list[str]:
        """One line: how many tests ran alone, and why."""
        if not threads or not self.reasons:
            return []
        kinds: Counter[str] = Counter()
        for reason in self.reasons.values():
            if reason.startswith("uses "):
                kinds["using " + reason.split(":", 1)[0].removeprefix("uses ")] += 1
            elif reason.startswith("an earlier run"):
                kinds["caught in an earlier run"] += 1
            elif reason.startswith("a doctest"):
                kinds["doctest"] += 1
            elif reason.startswith("marked ") and ":" in reason:
                kinds[reason.split(":", 1)[0]] += 1
            else:
                kinds[reason] += 1
        parts = ", ".join(
            f"{count} {kind}{'s' if kind == 'doctest' and count != 1 else ''}" for kind, count in kinds.most_common()
        )
        count = len(self.reasons)
        line = f"{count} test{'s' if count != 1 else ''} ran alone in their process ({parts})"
        if any(kind.startswith("using ") for kind in kinds):
            line += "; the ini option thread_safe_fixtures lists fixtures your project knows are thread-safe"
        return [line]


def caught_notes(caught: dict[str, str], remembered: bool) -> list[str]:
    """What the run caught tests doing beside others, for the end of the run."""
    if not caught:
        return []
    later = "from the next run on, each runs alone" if remembered else "no cache to remember them in"
    lines = [f"caught changing process-wide state beside other tests ({later}):"]
    lines += [f"  {nodeid}: {why}" for nodeid, why in sorted(caught.items())]
    return lines
