"""Warning filters and recording per thread (Python < 3.14 keeps them global).

pytest wraps every test in ``warnings.catch_warnings(record=True)`` and adds
the test's ``filterwarnings`` marks; ``pytest.warns`` and ``recwarn`` do the
same. ``catch_warnings`` saves and restores module-global state, so on two
threads at once the saves and restores interleave: warnings land in the wrong
test, and the state left behind at the end may be any test's.

While fleet runs threads, the global filter list is a single "always" entry,
so every warning reaches :meth:`ThreadWarnings.deliver`, and the filters,
the recording list and ``catch_warnings`` itself work on a stack kept per
thread. ``deliver`` then applies the calling thread's filters as the
``warnings`` module would: ignore, raise for "error", show once per location
for "default", and record or print the rest.
"""

from __future__ import annotations

import re
import sys
import threading
import warnings
from typing import Any

from fleet.state.internals import internal_frame


class _Frame:
    """What one ``catch_warnings`` block sees: filters, where records go, what was shown."""

    __slots__ = ("filters", "record", "seen")

    def __init__(self, filters: list[tuple], record: list | None) -> None:
        self.filters = filters
        self.record = record
        self.seen: set[tuple] = set()


class _Stacks(threading.local):
    frames: list[_Frame] | None = None


_NO_TEXT = object()


class _Caught(threading.local):
    text: Any = _NO_TEXT


_caught = _Caught()


class _TextCatcher:
    """The message pattern of the one global filter: CPython hands it the
    warning's text as given (``warnings.warn(1)`` gives ``1``), which
    :meth:`ThreadWarnings.deliver` then matches against the thread's own
    filters, so a non-str message fails a message filter with CPython's
    TypeError."""

    pattern = ""

    def match(self, text: Any) -> bool:
        _caught.text = text
        return True


def _module_name(filename: str) -> str:
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return filename[:-3] if filename.lower().endswith(".py") else filename


class ThreadWarnings:
    def __init__(self) -> None:
        self._stacks = _Stacks()
        self._saved: dict[str, Any] = {}
        self._module_names: dict[str, str] = {}

    # -- installation ---------------------------------------------------------

    def install(self) -> None:
        w = warnings
        self._base = list(w.filters)
        self._saved = {
            "filters": w.filters,
            "showwarning": w.showwarning,
            "impl": w._showwarnmsg_impl,
            "show": w._showwarnmsg,
            "simplefilter": w.simplefilter,
            "filterwarnings": w.filterwarnings,
            "resetwarnings": w.resetwarnings,
            "enter": w.catch_warnings.__enter__,
            "exit": w.catch_warnings.__exit__,
        }
        stacks, base, printer = self._stacks, self._base, self._saved["impl"]
        original_enter, original_exit = self._saved["enter"], self._saved["exit"]
        this = self

        def top() -> _Frame:
            if stacks.frames is None:
                stacks.frames = [_Frame(list(base), None)]
            return stacks.frames[-1]

        self._top = top
        self._printer = printer

        def add(item: tuple, append: bool) -> None:
            filters = top().filters
            if item in filters:
                filters.remove(item)
            if append:
                filters.append(item)
            else:
                filters.insert(0, item)

        def simplefilter(action: str, category: type = Warning, lineno: int = 0, append: bool = False) -> None:
            add((action, None, category, None, lineno), append)

        def filterwarnings(
            action: str, message: str = "", category: type = Warning, module: str = "",
            lineno: int = 0, append: bool = False,
        ) -> None:
            add(
                (action, re.compile(message, re.I) if message else None, category,
                 re.compile(module) if module else None, lineno),
                append,
            )

        def resetwarnings() -> None:
            top().filters[:] = []

        def enter(self: Any) -> Any:
            if self._module is not warnings:
                return original_enter(self)
            if self._entered:
                raise RuntimeError(f"Cannot enter {self!r} twice")
            self._entered = True
            outer = top()
            frame = _Frame(list(outer.filters), outer.record)
            stacks.frames.append(frame)
            self._fleet_frame = frame
            action = getattr(self, "_filter", None)
            if action is not None:
                simplefilter(*action)
            if self._record:
                frame.record = []
                return frame.record
            return None

        def exit(self: Any, *exc_info: Any) -> None:
            frame = getattr(self, "_fleet_frame", None)
            if frame is None:
                return original_exit(self, *exc_info)
            if not self._entered:
                raise RuntimeError(f"Cannot exit {self!r} without entering first")
            frames = stacks.frames or []
            if frame in frames:
                frames.remove(frame)
            del self._fleet_frame

        w.filters = [("always", _TextCatcher(), Warning, None, 0)]
        w._filters_mutated()
        w.showwarning = w._showwarning_orig
        # CPython calls warnings._showwarnmsg for each warning that passes the
        # global filter; calling deliver directly keeps the stdlib's frame out
        # of the traceback of a warning turned into an error.
        w._showwarnmsg = this.deliver
        w.simplefilter, w.filterwarnings, w.resetwarnings = simplefilter, filterwarnings, resetwarnings
        w.catch_warnings.__enter__, w.catch_warnings.__exit__ = enter, exit

    def uninstall(self) -> None:
        w, saved = warnings, self._saved
        w.catch_warnings.__enter__, w.catch_warnings.__exit__ = saved["enter"], saved["exit"]
        w.simplefilter, w.filterwarnings = saved["simplefilter"], saved["filterwarnings"]
        w.resetwarnings = saved["resetwarnings"]
        w.showwarning, w._showwarnmsg_impl = saved["showwarning"], saved["impl"]
        w._showwarnmsg = saved["show"]
        w.filters = saved["filters"]
        w._filters_mutated()

    # -- delivery -------------------------------------------------------------

    @internal_frame
    def deliver(self, message: warnings.WarningMessage) -> None:
        __tracebackhide__ = True
        frame = self._top()
        text, _caught.text = _caught.text, _NO_TEXT
        if text is _NO_TEXT:
            text = str(message.message)
        category = message.category
        filename = message.filename or "<unknown>"
        module = self._module_names.get(filename)
        if module is None:
            module = self._module_names[filename] = _module_name(filename)
        action = "default"
        for act, msg, cat, mod, line in frame.filters:
            if (
                (msg is None or msg.match(text))
                and issubclass(category, cat)
                and (mod is None or mod.match(module))
                and (line == 0 or message.lineno == line)
            ):
                action = act
                break
        if action == "ignore":
            return
        if action == "error":
            raise message.message if isinstance(message.message, Warning) else category(text)
        if action in ("default", "module", "once"):
            key = {
                "once": (text, category),
                "module": (text, category, module),
            }.get(action, (text, category, module, message.lineno))
            if key in frame.seen:
                return
            frame.seen.add(key)
        if frame.record is not None:
            frame.record.append(message)
            return
        shown = warnings.showwarning
        if shown is not warnings._showwarning_orig:  # replaced by the code under test
            shown(message.message, message.category, message.filename, message.lineno, message.file, message.line)
        else:
            self._printer(message)
