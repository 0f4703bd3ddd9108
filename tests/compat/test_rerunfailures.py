"""pytest-rerunfailures: reruns, their counts and the rerun summary are the serial run's."""

from __future__ import annotations

import pytest

from .conftest import over_modes

pytest.importorskip("pytest_rerunfailures")

PLUGINS = ("pytest-rerunfailures",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "test_flaky_api.py": '''
        """A service that fails now and then: the first call of each test fails."""
        import time
        import pytest

        attempts = {}


        def flaky_call(name, fail_times=1):
            attempts[name] = attempts.get(name, 0) + 1
            time.sleep(0.05)
            if attempts[name] <= fail_times:
                raise ConnectionError(f"{name}: attempt {attempts[name]} refused")
            return "ok"


        def test_fetch_user():
            assert flaky_call("user") == "ok"


        @pytest.mark.flaky(reruns=3)
        def test_fetch_orders_needs_two_retries():
            assert flaky_call("orders", fail_times=2) == "ok"


        def test_always_down():
            time.sleep(0.05)
            raise ConnectionError("service down")


        def test_stable():
            time.sleep(0.05)
    ''',
    "test_setup_flaky.py": """
        import time
        import pytest

        setups = {"n": 0}
        module_setups = {"n": 0}


        @pytest.fixture(scope="module")
        def connection():
            module_setups["n"] += 1
            return object()


        @pytest.fixture
        def session_token():
            setups["n"] += 1
            time.sleep(0.05)
            if setups["n"] == 1:
                raise TimeoutError("token service slow")
            return "tok"


        def test_with_token(connection, session_token):
            assert session_token == "tok"


        def test_module_fixture_made_once(connection):
            # the rerun of test_with_token must not make the module fixture again
            assert module_setups["n"] == 1


        @pytest.mark.flaky(reruns=0)
        def test_no_rerun_for_this_one():
            raise AssertionError("fails, not rerun")
    """,
}

ARGS = ("--reruns", "1", "-raR")

# The RERUN lines of the "rerun test summary info" section of the serial run,
# one per logged rerun (pytest-rerunfailures 16.2+ also lists each rerun
# test's final outcome there).
RERUNS = sorted([
    "RERUN test_flaky_api.py::test_fetch_user",
    "RERUN test_flaky_api.py::test_fetch_orders_needs_two_retries",
    "RERUN test_flaky_api.py::test_fetch_orders_needs_two_retries",
    "RERUN test_flaky_api.py::test_always_down",
    "RERUN test_setup_flaky.py::test_with_token",
])


def rerun_summary(run) -> list[str]:
    lines, inside = [], False
    for line in run.stdout.splitlines():
        if "rerun test summary info" in line:
            inside = True
        elif inside and line.startswith("=="):
            break
        elif inside and line.strip():
            lines.append(line.strip())
    return sorted(lines)


@over_modes
def test_reruns(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, *ARGS)
    assert got.counts == "2 failed, 5 passed, 5 rerun", f"[{mode}] {got.counts}\n{got.tail()}"
    assert got.ret == 1, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    summary = rerun_summary(got)
    assert [line for line in summary if line.startswith("RERUN ")] == RERUNS, (
        f"[{mode}] rerun summary {summary}\n{got.tail()}")
    assert summary == rerun_summary(serial), f"[{mode}] rerun summary {summary}, serial {rerun_summary(serial)}"
    assert got.junit["test_setup_flaky::test_with_token"] == "passed"
    assert got.junit["test_setup_flaky::test_module_fixture_made_once"] == "passed"
