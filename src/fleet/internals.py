"""Every private pytest (and pluggy) name fleet relies on, in one place.

fleet runs pytest's own per-test machinery on several threads at once. That
needs a handful of names pytest does not promise to keep. They are all listed
here, each with why it is needed, and :func:`check` verifies at start-up that
every one still exists, so a pytest release that moves one makes fleet refuse
to run with one clear line instead of misbehaving half-way through a run.

Nothing outside this module may import from ``_pytest`` or touch a private
attribute of a pytest object.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

import _pytest.logging as _logging
import _pytest.outcomes as _outcomes
import _pytest.runner as _runner

# The exceptions pytest treats as a test outcome (skip/fail/xfail and any
# Exception); SetupState re-raises these for every item below a failed node.
TEST_OUTCOME: tuple[type[BaseException], ...] = (_outcomes.OutcomeException, Exception)

# Runs setup/call/teardown of one item and returns its reports without logging
# them, so a worker thread can run a test and the main thread report it.
runtestprotocol: Callable[..., list[pytest.TestReport]] = _runner.runtestprotocol

# The stash keys the ``caplog`` fixture reads its per-phase handler and
# records from; fleet's per-thread log capture fills them.
caplog_handler_key = _logging.caplog_handler_key
caplog_records_key = _logging.caplog_records_key
LogCaptureHandler = _logging.LogCaptureHandler

# (owner, attribute, why) for attributes looked up on live objects.
_ATTRIBUTES: list[tuple[Any, str, str]] = [
    (pytest.Session, "_setupstate", "fleet swaps in a thread-safe SetupState"),
    (pytest.FixtureDef, "execute", "fleet keeps one fixture value per scope instance"),
    (pytest.FixtureDef, "finish", "fleet tears each scope instance down once"),
    (pytest.FixtureDef, "cache_key", "fleet keys fixture values like pytest does"),
    (_logging.LoggingPlugin, "_runtest_for", "fleet captures logs per thread"),
    (_runner.SetupState, "teardown_exact", "fleet replaces SetupState's interface"),
]
_INSTANCE_ATTRIBUTES: list[tuple[str, str, str]] = [
    ("FixtureDef", "cached_result", "fixture values are kept per scope instance"),
    ("FixtureDef", "_finalizers", "fixture finalizers are kept per scope instance"),
    ("CaptureManager", "_global_capturing", "fleet captures output per thread"),
    ("CaptureManager", "item_capture", "fleet captures output per thread"),
    ("Config", "_tmp_path_factory", "the base temp dir is made before threads start"),
]


def check(config: pytest.Config | None = None) -> str | None:
    """Return one line naming the first missing touchpoint, or None if all exist."""
    for owner, name, why in _ATTRIBUTES:
        if not hasattr(owner, name) and name not in getattr(owner, "__annotations__", {}):
            return _missing(f"{owner.__name__}.{name}", why)
    import _pytest.capture as _capture
    import _pytest.fixtures as _fixtures

    if "_finalizers" not in _fixtures.FixtureDef.__init__.__code__.co_names:
        return _missing("FixtureDef._finalizers", "fixture finalizers are kept per scope instance")
    if "cached_result" not in _fixtures.FixtureDef.__init__.__code__.co_names:
        return _missing("FixtureDef.cached_result", "fixture values are kept per scope instance")
    if "_global_capturing" not in _capture.CaptureManager.__init__.__code__.co_names:
        return _missing("CaptureManager._global_capturing", "fleet captures output per thread")
    if not hasattr(_capture.CaptureManager, "item_capture"):
        return _missing("CaptureManager.item_capture", "fleet captures output per thread")
    if config is not None and not hasattr(config, "_tmp_path_factory"):
        return _missing("Config._tmp_path_factory", "the base temp dir is made before threads start")
    return None


def _missing(name: str, why: str) -> str:
    return (
        f"fleet: this pytest ({pytest.__version__}) has no {name}, which fleet needs "
        f"({why}); use a pytest version fleet supports (8.x, 9.x) or run without --mt"
    )


# --- accessors: the only places private attributes are read or written -------


def get_setupstate(session: pytest.Session) -> Any:
    return session._setupstate


def set_setupstate(session: pytest.Session, state: Any) -> None:
    session._setupstate = state


def fixture_storage(fixturedef: pytest.FixtureDef) -> dict[str, Any]:
    """The instance dict holding ``cached_result`` and ``_finalizers``."""
    return fixturedef.__dict__


FIXTUREDEF_SLOT_ATTRIBUTES = ("cached_result", "_finalizers")


def capture_manager(config: pytest.Config) -> Any:
    return config.pluginmanager.getplugin("capturemanager")


def swap_global_capturing(capman: Any, value: Any) -> Any:
    """Replace the capture manager's global capture, returning the old one."""
    old = capman._global_capturing
    capman._global_capturing = value
    return old


def logging_plugin(config: pytest.Config) -> Any:
    return config.pluginmanager.get_plugin("logging-plugin")


def override_runtest_for(plugin: Any, generator_function: Callable[..., Any]) -> None:
    """Make the logging plugin use ``generator_function(item, when)`` per phase.

    pytest up to 8.x calls ``_runtest_for`` with ``yield from`` (a generator);
    later versions use it as a context manager.
    """
    import contextlib
    import inspect

    if inspect.isgeneratorfunction(_logging.LoggingPlugin._runtest_for):
        plugin._runtest_for = generator_function
    else:
        plugin._runtest_for = contextlib.contextmanager(generator_function)


def restore_runtest_for(plugin: Any) -> None:
    plugin.__dict__.pop("_runtest_for", None)


class CurrentTestVariable:
    """A thread-safe stand-in for pytest's ``PYTEST_CURRENT_TEST`` bookkeeping.

    pytest sets the variable at each phase and pops it after teardown; on
    several threads the second pop raises KeyError. The environment is
    process-wide, so the variable names the test that most recently started
    a phase.
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._original: Any = None

    def _update(self, item: pytest.Item, when: str | None) -> None:
        import os

        with self._lock:
            if when:
                os.environ["PYTEST_CURRENT_TEST"] = f"{item.nodeid} ({when})".replace("\x00", "(null)")
            else:
                os.environ.pop("PYTEST_CURRENT_TEST", None)

    def install(self) -> None:
        self._original = _runner._update_current_test_var
        _runner._update_current_test_var = self._update

    def uninstall(self) -> None:
        _runner._update_current_test_var = self._original


def warm_tmp_path_factory(config: pytest.Config) -> None:
    """Create the base temp dir once, before threads race to create it."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        factory.getbasetemp()
