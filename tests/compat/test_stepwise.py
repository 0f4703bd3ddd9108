"""``--sw`` (pytest's stepwise): the second run starts where a serial --sw session's would."""

from __future__ import annotations

import json

from .conftest import assert_finished, over_modes

PLUGINS = ()

FILES = {
    # No -p no:cacheprovider here: stepwise keeps its state in pytest's cache.
    "pytest.ini": """
        [pytest]
    """,
    "test_a_auth.py": """
        import time


        def test_login():
            time.sleep(0.05)


        def test_logout_broken():
            time.sleep(0.02)
            assert False, "logout is broken (fails fast)"


        def test_refresh():
            time.sleep(0.05)
    """,
    "test_b_cart.py": """
        import time


        def test_add():
            time.sleep(0.1)


        def test_remove():
            time.sleep(0.1)
    """,
    "test_c_checkout.py": """
        import time


        def test_pay_broken():
            time.sleep(0.3)  # slow, and broken too
            assert False, "payment is broken"


        def test_receipt():
            time.sleep(0.05)
    """,
}

FIRST_FAILURE = "test_a_auth.py::test_logout_broken"


def last_failed(run) -> str | None:
    path = run.file(".pytest_cache/v/cache/stepwise")
    if not path.exists():
        return None
    value = json.loads(path.read_text())
    return value.get("last_failed") if isinstance(value, dict) else value


def selection(run) -> list[str]:
    """pytest's collection line, e.g. ``collected 7 items / 1 deselected / 6 selected``."""
    return run.lines(r"^collect(ing|ed) .*\d+ items?")[-1:]


def sw_session(suite, mode: str):
    """Two ``--sw -v`` runs in one directory, from an empty cache."""
    where = suite.copy(mode)
    first = suite.run(mode, "--sw", "-v", where=where)
    first.extra["last_failed"] = last_failed(first)
    second = suite.run(mode, "--sw", "-v", where=where)
    second.extra["last_failed"] = last_failed(second)
    return first, second


def assert_run_like_serial(run, serial, which: str) -> None:
    """A --sw run: the serial run's tests with the serial outcomes, the same
    selection, exit code and stepwise cache. A parallel run stops handing out
    tests at the failure, and tests already running finish and are reported
    (as with -x), so it may report tests the serial run did not reach."""
    assert_finished(run)
    mode = run.mode
    differ = {t: (o, run.junit.get(t, "(absent)")) for t, o in serial.junit.items() if run.junit.get(t) != o}
    assert not differ, f"[{mode}] {which}: outcomes differ from serial: " + "; ".join(
        f"{t}: serial {a}, {mode} {b}" for t, (a, b) in differ.items())
    assert selection(run) == selection(serial), f"[{mode}] {which}: {selection(run)}, serial {selection(serial)}"
    assert run.ret == serial.ret, f"[{mode}] {which}: exit {run.ret}, serial {serial.ret}\n{run.tail()}"
    assert run.extra["last_failed"] == serial.extra["last_failed"] == FIRST_FAILURE, (
        f"[{mode}] {which} left stepwise's last_failed = {run.extra['last_failed']!r}, serial {FIRST_FAILURE!r}")


@over_modes
def test_stepwise(compat, mode: str) -> None:
    suite = compat.suite(FILES)
    serial_first, serial_second = compat.serial(lambda: sw_session(suite, "serial"))
    first, second = (serial_first, serial_second) if mode == "serial" else sw_session(suite, mode)

    # Serial run 1 stops at the first failure in collection order; stepwise
    # remembers it. Run 2 skips what passed before it and fails it again.
    assert serial_first.counts == "1 failed, 1 passed", f"[serial] run 1: {serial_first.counts!r}\n{serial_first.tail()}"
    assert serial_second.counts == "1 failed, 1 deselected", f"[serial] run 2: {serial_second.counts!r}\n{serial_second.tail()}"
    assert "Test failed, continuing from this test next run." in first.stdout, (
        f"[{mode}] run 1 did not stop at a failure\n{first.tail()}")
    assert_run_like_serial(first, serial_first, "run 1")
    assert_run_like_serial(second, serial_second, "run 2")
