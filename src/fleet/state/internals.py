"""Every private pytest name fleet relies on, in one place.

fleet runs pytest's own per-test machinery on several threads at once. That
needs a few names pytest does not promise to keep. Each is listed in
:data:`TOUCHPOINTS` with why it is needed; :func:`check` verifies them all
before a threaded run, so a pytest release that moved one makes fleet refuse
``--mt`` with one clear line instead of misbehaving half-way through a run.
Without ``--mt`` none of them is touched.

Nothing outside this module imports from ``_pytest`` or touches a private
attribute of a pytest object.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import os
import shlex
import types
from typing import Any, Callable, Sequence, TypeVar

import pytest

# (module, dotted attribute, what fleet does with it). An attribute in
# ``__init__`` is checked as a name assigned there.
TOUCHPOINTS: list[tuple[str, str, str]] = [
    ("_pytest.outcomes", "OutcomeException", "set-up errors are re-raised as pytest does"),
    ("_pytest.runner", "_update_current_test_var", "PYTEST_CURRENT_TEST is kept thread-safe"),
    ("_pytest.runner", "SetupState.__init__", "fleet swaps in a thread-safe Session._setupstate"),
    ("_pytest.fixtures", "FixtureDef.__init__:cached_result", "fixture values per scope instance"),
    ("_pytest.fixtures", "FixtureDef.__init__:_finalizers", "fixture finalizers per scope instance"),
    ("_pytest.fixtures", "FixtureDef.execute", "fixture values per scope instance"),
    ("_pytest.fixtures", "FixtureDef.finish", "each scope instance is torn down once"),
    ("_pytest.fixtures", "FixtureDef.cache_key", "fixture instances are keyed as pytest keys them"),
    ("_pytest.fixtures", "FuncFixtureInfo", "fixtures depending on worker_id are kept per worker"),
    ("_pytest.python", "Function._initrequest", "session fixtures are made once, before the tests"),
    ("_pytest.config.argparsing", "OptionGroup._addoption", "pytest-xdist's -n is accepted without it"),
    ("_pytest.config.argparsing", "Parser.__init__:_processopt", "pytest-xdist's -n is its own when it loads after fleet"),
    ("_pytest.capture", "CaptureManager.__init__:_global_capturing", "output is captured per thread"),
    ("_pytest.capture", "CaptureManager.item_capture", "output is captured per thread"),
    ("_pytest.logging", "LoggingPlugin._runtest_for", "logs are captured per thread"),
    ("_pytest.logging", "LoggingPlugin.__init__:formatter", "logs are captured per thread"),
    ("_pytest.logging", "LoggingPlugin.__init__:log_level", "logs are captured per thread"),
    ("_pytest.logging", "LogCaptureHandler", "logs are captured per thread"),
    ("_pytest.logging", "caplog_handler_key", "caplog reads the current thread's handler"),
    ("_pytest.logging", "caplog_records_key", "caplog reads the current thread's records"),
    ("_pytest._io.terminalwriter", "TerminalWriter.__init__:_file", "the live view prints pytest's lines above it"),
    ("_pytest.terminal", "TerminalReporter.__init__:_tw", "progress characters run on in lines of the terminal's width"),
    ("_pytest._io.terminalwriter", "TerminalWriter.fullwidth", "progress characters run on in lines of the terminal's width"),
    ("_pytest.terminal", "TerminalReporter._width_of_current_line", "progress characters run on in lines of the terminal's width"),
    ("_pytest.terminal", "TerminalReporter.__init__:_show_progress_info", "progress characters run on in lines of the terminal's width"),
    ("_pytest.terminal", "TerminalReporter._write_progress_information_filling_space", "a SLOW line comes after a progress line's percentage"),
    ("_pytest.terminal", "TerminalReporter._report_keyboardinterrupt", "Ctrl-C names the tests that were running, not fleet's frame"),
    ("_pytest.terminal", "TerminalReporter.pytest_keyboard_interrupt:_keyboardinterrupt_memo", "--full-trace still shows the whole traceback on Ctrl-C"),
    ("pluggy._manager", "PluginManager.__init__:_inner_hookexec", "a test's logging hooks are replayed by the main thread"),
    ("_pytest.tmpdir", "TempPathFactory.__init__:_basetemp", "each worker process has a base temporary directory of its own"),
    ("_pytest.subtests", "capturing_output", "a subtest's output is captured per thread"),
]
# Touchpoints in modules only some supported pytest versions have (subtests: 9+).
OPTIONAL_MODULES = {"_pytest.subtests"}


def exists(module_name: str, path: str) -> bool:
    """Whether ``module.attribute[.attribute...]`` exists; with ``:name`` after a
    function, whether that function assigns ``name`` (an attribute it sets)."""
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError:
        return False
    attribute, _, assigned = path.partition(":")
    for part in attribute.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    if assigned:
        return assigned in getattr(getattr(obj, "__code__", None), "co_names", ())
    return True


def check(setupstate_interface: frozenset[str] = frozenset()) -> str | None:
    """Return one line naming the first missing touchpoint, or None if all exist.

    ``setupstate_interface`` names what fleet's replacement for pytest's
    SetupState provides; a public method pytest's SetupState has beyond it
    would be called by pytest and missing, so it also refuses the run.
    """
    runner = _private("_pytest.runner")
    for name in sorted(vars(getattr(runner, "SetupState", object))):
        if not name.startswith("_") and setupstate_interface and name not in setupstate_interface:
            return (
                f"fleet: this pytest ({pytest.__version__}) has SetupState.{name}, which fleet "
                "does not know; use a pytest version fleet supports (8.x, 9.x) or run without --mt"
            )
    for module_name, path, why in TOUCHPOINTS:
        if module_name in OPTIONAL_MODULES and importlib.util.find_spec(module_name) is None:
            continue
        if not exists(module_name, path):
            name = path.replace(".__init__:", ".")
            return (
                f"fleet: this pytest ({pytest.__version__}) has no {name}, which fleet needs "
                f"({why}); use a pytest version fleet supports (8.x, 9.x) or run without --mt"
            )
    return None


@functools.cache
def _private(module_name: str) -> Any:
    return importlib.import_module(module_name)


# --- tracebacks ----------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def internal_frame(function: F) -> F:
    """Make ``function``'s frames read as pytest's own in failure reports.

    fleet's code sits between pytest's and the test's (fixture set-up,
    SetupState, hook wrappers). pytest drops its own and pluggy's frames, and
    those of generated code (a file name in ``<...>``), from a failure's
    traceback, and shows them all only when nothing else is left. Giving
    fleet's functions such a file name makes a fixture error read exactly as
    in a serial run; ``__tracebackhide__`` in them hides them from the full
    traceback too.
    """
    code = function.__code__
    if not code.co_filename.startswith("<"):
        function.__code__ = code.replace(co_filename=f"<fleet {code.co_filename}>")
    return function


# --- hooks ---------------------------------------------------------------------


def hook_executor(pluginmanager: Any) -> Callable[..., Any]:
    """What every hook call goes through in pluggy (whatever proxy made it)."""
    return pluginmanager._inner_hookexec


def set_hook_executor(pluginmanager: Any, executor: Callable[..., Any]) -> None:
    pluginmanager._inner_hookexec = executor


# --- stepwise ------------------------------------------------------------------


def set_stepwise_failure(plugin: Any, report: Any) -> None:
    """Make ``--sw`` remember ``report``'s test as the one to continue from
    (pytest >= 9 keeps it in ``cached_info``, earlier versions in ``lastfailed``)."""
    cached = getattr(plugin, "cached_info", None)
    if cached is not None:
        cached.last_failed = report.id
    else:
        plugin.lastfailed = report.nodeid


# --- subtests ------------------------------------------------------------------


def _failed_subtests(config: pytest.Config) -> Any:
    try:
        module = importlib.import_module("_pytest.subtests")
    except ImportError:
        return None
    key = getattr(module, "failed_subtests_key", None)
    return config.stash.get(key, None) if key is not None else None


def failed_subtests(config: pytest.Config, item: pytest.Item) -> int:
    """pytest >= 9 fails a passing test whose subtests failed by counting them
    in ``config.stash`` where the subtest ran: a worker process's count must
    reach the controller, which shows the test's outcome."""
    counts = _failed_subtests(config)
    return counts.get(item.id, 0) if counts is not None else 0


def set_failed_subtests(config: pytest.Config, item: pytest.Item, count: int) -> None:
    counts = _failed_subtests(config)
    if counts is not None and (count or item.id in counts):
        counts[item.id] = count


def restore_subtest_kwargs(report: Any, data: Any) -> None:
    """pytest 9's ``SubtestContext`` repr()s its kwargs when made, so one
    loaded from its serialized form repr()s them twice (``SUBFAILED(s="'x'")``
    where a serial run says ``SUBFAILED(s='x')``): put the sent ones back."""
    context = getattr(report, "context", None)
    sent = data.get("_subtest.context") if isinstance(data, dict) else None
    if context is not None and isinstance(sent, dict) and isinstance(sent.get("kwargs"), dict):
        object.__setattr__(context, "kwargs", dict(sent["kwargs"]))


# --- outcomes and the runner --------------------------------------------------


def test_outcome_types() -> tuple[type[BaseException], ...]:
    """What SetupState catches and re-raises: skip/fail/xfail and any Exception."""
    return (_private("_pytest.outcomes").OutcomeException, Exception)


def get_setupstate(session: pytest.Session) -> Any:
    return session._setupstate


def set_setupstate(session: pytest.Session, state: Any) -> None:
    session._setupstate = state


class CurrentTestVariable:
    """A thread-safe stand-in for pytest's ``PYTEST_CURRENT_TEST`` bookkeeping.

    pytest sets the variable at each phase and pops it after teardown; on
    several threads the second pop raises KeyError. The environment is
    process-wide, so the variable names the test that most recently started
    a phase. No lock: each update is one call, and a lock held across
    ``os.environ``'s Python code makes every thread queue behind it.
    """

    def __init__(self) -> None:
        self._original: Any = None

    def _update(self, item: pytest.Item, when: str | None) -> None:
        if when:
            os.environ["PYTEST_CURRENT_TEST"] = f"{item.nodeid} ({when})".replace("\x00", "(null)")
        else:
            try:  # not pop(): it reads, then deletes, and another thread may delete between
                del os.environ["PYTEST_CURRENT_TEST"]
            except KeyError:
                pass

    def install(self) -> None:
        runner = _private("_pytest.runner")
        self._original = runner._update_current_test_var
        runner._update_current_test_var = self._update

    def uninstall(self) -> None:
        _private("_pytest.runner")._update_current_test_var = self._original


def nest_basetemp(config: pytest.Config, name: str) -> None:
    """Give this process a base temporary directory of its own under the run's,
    as pytest-xdist's workers have (so ``getbasetemp().parent`` is the run's)."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    nested = factory.getbasetemp() / name
    nested.mkdir(exist_ok=True)
    factory._basetemp = nested


def warm_tmp_path_factory(config: pytest.Config) -> None:
    """Create the base temp dir once, before threads race to create it.

    Optional: without it the first tests would race to make the directory,
    which pytest's numbered directories survive.
    """
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        factory.getbasetemp()


# --- fixtures -----------------------------------------------------------------

FIXTUREDEF_SLOT_ATTRIBUTES = ("cached_result", "_finalizers")


def fixture_info(item: pytest.Item) -> Any:
    """The item's fixture closure and definitions (pytest's ``FuncFixtureInfo``)."""
    return getattr(item, "_fixtureinfo", None)


def has_param(request: Any) -> bool:
    """Whether the request sets up a parametrized instance (``request.param``)."""
    return hasattr(request, "param")


# pytest >= 8.3 reuses a fixture instance whose parameter is equal (==, else
# ``is`` when comparing raises); earlier versions only an identical one.
_PARAMETERS_COMPARE_EQUAL = pytest.version_tuple[:2] >= (8, 3)


def same_parameter(cached: Any, requested: Any) -> bool:
    """Whether pytest would reuse an instance made for ``cached`` for ``requested``."""
    if not _PARAMETERS_COMPARE_EQUAL:
        return cached is requested
    try:
        return bool(requested == cached)
    except (ValueError, RuntimeError):
        return requested is cached


def fixture_definitions(item: pytest.Item) -> dict[str, Sequence[pytest.FixtureDef]]:
    """Every fixture name the item can see, with its definitions (overrides last)."""
    info = fixture_info(item)
    return info.name2fixturedefs if info is not None else {}


def fixture_cache_key(item: pytest.Item, fixturedef: pytest.FixtureDef, argname: str) -> Any:
    """What ``fixturedef.cache_key`` answers for ``argname`` in ``item``'s request.

    Asked of pytest itself with a stand-in holding only what a request would:
    the parameter and its index when the item is parametrized over it.
    """
    callspec = getattr(item, "callspec", None)
    request = types.SimpleNamespace(param_index=0)
    if callspec is not None and argname in callspec.params:
        request.param = callspec.params[argname]
        request.param_index = callspec.indices[argname]
    return fixturedef.cache_key(request)  # type: ignore[arg-type]


def make_fixture_value(item: pytest.Item, argname: str) -> Any:
    """Set up ``argname`` as ``item``'s request would, outside the item's run.

    A fresh request is used and dropped, as ``runtestprotocol`` does, so the
    item's own run later starts from a clean request.
    """
    item._initrequest()
    try:
        return item._request.getfixturevalue(argname)
    finally:
        item._request = False
        item.funcargs = None


def fixture_storage(fixturedef: pytest.FixtureDef) -> dict[str, Any]:
    """The instance dict holding ``cached_result`` and ``_finalizers``."""
    return fixturedef.__dict__


def add_short_option(group: Any, *names: str, **attrs: Any) -> None:
    """Add an option with a lowercase short name (``-n``), which pytest keeps
    for itself; pytest-xdist adds its ``-n`` the same way."""
    group._addoption(*names, **attrs)


def plugins_asked_for(parser: Any) -> list[str]:
    """The ``-p NAME`` values of this invocation (its arguments and
    ``PYTEST_ADDOPTS``); the parser's option processor is the config's."""
    config = getattr(getattr(parser, "_processopt", None), "__self__", None)
    args = list(getattr(getattr(config, "invocation_params", None), "args", ()) or ())
    args += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    names = []
    for arg, following in zip(args, args[1:] + [""]):
        if arg == "-p":
            names.append(following)
        elif arg.startswith("-p") and not arg.startswith("--"):
            names.append(arg[2:])
    return names


# --- capture ------------------------------------------------------------------


def capture_manager(config: pytest.Config) -> Any:
    return config.pluginmanager.getplugin("capturemanager")


@contextlib.contextmanager
def capture_taken_over(capman: Any, item_capture: Callable[..., Any], global_capture: Any):
    """Route pytest's per-phase capture to ``item_capture`` for a while.

    pytest's global capture stays suspended (as it is between tests) and out of
    reach behind ``global_capture``, so nothing resumes it while fleet routes
    output itself.
    """
    saved_global, capman._global_capturing = capman._global_capturing, global_capture
    capman.item_capture = item_capture
    try:
        yield
    finally:
        del capman.item_capture
        capman._global_capturing = saved_global


# --- logging ------------------------------------------------------------------


@contextlib.contextmanager
def subtest_capture_replaced(capturing_output: Callable[..., Any]):
    """pytest 9 captures each subtest's output with a process-wide ``FDCapture``
    or ``SysCapture`` (``_pytest.subtests.capturing_output``); under threads
    ``capturing_output(request)`` captures it on the subtest's thread instead."""
    try:
        module = _private("_pytest.subtests")
    except ImportError:
        yield
        return
    saved, module.capturing_output = module.capturing_output, capturing_output
    try:
        yield
    finally:
        module.capturing_output = saved


def logging_plugin(config: pytest.Config) -> Any:
    return config.pluginmanager.get_plugin("logging-plugin")


def log_settings(plugin: Any) -> tuple[Any, int | None]:
    """The report formatter and ``log_level`` of pytest's logging plugin."""
    return plugin.formatter, plugin.log_level


def log_capture_handler() -> Any:
    return _private("_pytest.logging").LogCaptureHandler()


def publish_caplog_handler(item: pytest.Item, when: str, handler: Any) -> None:
    """Make ``caplog`` in this test phase read ``handler``."""
    logging_module = _private("_pytest.logging")
    item.stash[logging_module.caplog_records_key][when] = handler.records
    item.stash[logging_module.caplog_handler_key] = handler


def override_runtest_for(plugin: Any, generator_function: Callable[..., Any]) -> None:
    """Make the logging plugin use ``generator_function(item, when)`` per phase.

    pytest up to 8.x calls ``_runtest_for`` with ``yield from`` (a generator);
    later versions use it as a context manager.
    """
    if inspect.isgeneratorfunction(_private("_pytest.logging").LoggingPlugin._runtest_for):
        plugin._runtest_for = generator_function
    else:
        plugin._runtest_for = contextlib.contextmanager(generator_function)


def restore_runtest_for(plugin: Any) -> None:
    plugin.__dict__.pop("_runtest_for", None)


def terminal_file(reporter: Any) -> Any:
    """The file pytest's terminal writer writes to."""
    return reporter._tw._file


def set_terminal_file(reporter: Any, file: Any) -> Any:
    """Point pytest's terminal writer at ``file``; returns the one it had."""
    previous, reporter._tw._file = reporter._tw._file, file
    return previous


def current_line_width(reporter: Any) -> int:
    """How much of the terminal's current line pytest has written."""
    return reporter._width_of_current_line


def terminal_width(reporter: Any) -> int:
    return reporter._tw.fullwidth


def shows_progress(reporter: Any) -> bool:
    """Whether pytest ends progress lines with a percentage or count
    (``console_output_style``; off with ``-s`` and ``--setup-show``)."""
    return bool(reporter._show_progress_info)


def end_progress_line(reporter: Any) -> None:
    """End the current line of progress characters as pytest ends one at a
    file change: its percentage (or count) at the right edge, then a new line."""
    if reporter._show_progress_info:
        reporter._write_progress_information_filling_space()
    reporter.write("\n")


def replace_interrupt_banner(reporter: Any, title: str, lines: list[str], hint: bool) -> None:
    """pytest's banner for an interrupted run (``!!! KeyboardInterrupt !!!`` and
    the place it was raised, which in a parallel run is fleet's own loop) with
    ``title`` and ``lines`` instead; with ``--full-trace`` the traceback follows.
    ``hint``: say how to see that traceback, as pytest does."""

    def banner() -> None:
        reporter.write_sep("!", title)
        for line in lines:
            reporter.write_line(line)
        memo = reporter._keyboardinterrupt_memo
        if reporter.config.option.fulltrace and memo is not None:
            memo.toterminal(reporter._tw)
        elif hint:
            reporter.write_line("(to show a full traceback on KeyboardInterrupt use --full-trace)", yellow=True)

    reporter._report_keyboardinterrupt = banner
