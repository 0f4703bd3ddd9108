"""pytest-timeout: a test over its limit fails with pytest-timeout's own message, and the run goes on."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_timeout")

PLUGINS = ("pytest-timeout",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
        timeout = 10
    """,
    "test_api_calls.py": """
        import time
        import pytest


        def test_quick_1():
            time.sleep(0.1)


        @pytest.mark.timeout(1)
        def test_backend_hangs():
            time.sleep(5)  # a request that never answers


        def test_quick_2():
            time.sleep(0.1)
    """,
    "test_more.py": """
        import time
        import pytest


        @pytest.mark.parametrize("n", range(4))
        def test_other(n):
            time.sleep(0.1)


        @pytest.mark.timeout(1, func_only=True)
        def test_slow_loop():
            deadline = time.time() + 3
            while time.time() < deadline:  # busy, pure Python
                pass
    """,
}

# pytest-timeout's own message (serial: "Failed: Timeout (>1.0s) from pytest-timeout.").
MESSAGE = "Timeout (>1.0s) from pytest-timeout"
TIMED_OUT = ("test_api_calls::test_backend_hangs", "test_more::test_slow_loop")


@over_modes
def test_timeouts(compat, mode: str) -> None:
    """Serial (the signal method, on the main thread): both tests fail with
    pytest-timeout's message, the other 6 pass, exit 1."""
    got, serial = compat.against_serial(FILES, mode, "-ra")
    assert_counts(got, "2 failed, 6 passed")
    assert got.ret == 1, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    for test in TIMED_OUT:
        assert got.junit[test] == "failed"
        assert MESSAGE in got.messages[test], (
            f"[{mode}] {test} failed with {got.messages[test][:200]!r}, not pytest-timeout's {MESSAGE!r}")
    assert got.lines(r"^timeout: ") == serial.lines(r"^timeout: ") == ["timeout: 10.0s"]
    assert serial.lines(r"^timeout method: ") == ["timeout method: signal"]
