"""``ast.parse`` one call at a time while tests run on threads.

CPython 3.11's AST constructor keeps its recursion depth per interpreter, so
two threads building ASTs at once can fail with ``SystemError: AST
constructor recursion depth mismatch`` (reproducible without pytest).
pytest parses source to format every failure (and to rewrite asserts), so on
threads a run would lose a failure's report, and with it the run. While
fleet runs threads, ``ast.parse`` takes a lock, and a parse that still fails
that way (a caller that bypassed the lock) is tried once more.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

from fleet.state.internals import internal_frame



class SerialParse:
    def __init__(self) -> None:
        self._original: Any = None

    def install(self) -> None:
        original = self._original = ast.parse
        lock = threading.RLock()

        @internal_frame
        def parse(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            with lock:
                try:
                    return original(*args, **kwargs)
                except SystemError:
                    return original(*args, **kwargs)

        ast.parse = parse  # type: ignore[assignment]

    def uninstall(self) -> None:
        ast.parse = self._original  # type: ignore[assignment]
