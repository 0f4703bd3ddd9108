"""pytest-mock: patches and spies hold for their own test only, and are undone after it."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_mock")

PLUGINS = ("pytest-mock",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
        pythonpath = .
    """,
    "app/__init__.py": "",
    "app/billing.py": """
        from app import clock


        def charge(amount):
            return {"amount": amount, "at": clock.now()}


        def fee(amount):
            return round(amount * 0.03, 2)
    """,
    "app/clock.py": """
        import time


        def now():
            return time.time()


        def greeting():
            hour = int(now() // 3600 % 24)
            return "morning" if hour < 12 else "afternoon"
    """,
    "test_billing.py": """
        import time
        from app import billing, clock


        def test_charge_timestamp(mocker):
            mocker.patch("app.clock.now", return_value=1000.0)
            time.sleep(0.05)
            assert billing.charge(5)["at"] == 1000.0


        def test_fee_spy(mocker):
            spy = mocker.spy(billing, "fee")
            time.sleep(0.02)
            assert billing.fee(100) == 3.0
            time.sleep(0.02)
            spy.assert_called_once_with(100)


        def test_uses_fee():
            for _ in range(3):
                billing.fee(10)
                time.sleep(0.02)


        def test_unpatched_at_end():
            time.sleep(0.1)
            assert not hasattr(clock.now, "assert_called"), "clock.now is still a mock"
            assert not hasattr(billing.fee, "spy_return"), "billing.fee is still a spy"
    """,
    "test_clock.py": """
        import time
        from app import clock


        def test_morning(mocker):
            mocker.patch("app.clock.now", return_value=8 * 3600)
            time.sleep(0.05)
            assert clock.greeting() == "morning"


        def test_afternoon(mocker):
            mocker.patch("app.clock.now", return_value=15 * 3600)
            time.sleep(0.05)
            assert clock.greeting() == "afternoon"


        def test_real_clock_is_back():
            time.sleep(0.02)
            assert abs(clock.now() - time.time()) < 5  # not a mock left behind
    """,
    "test_report.py": """
        import time
        from app import clock


        def test_report_header(mocker):
            mocker.patch("app.clock.now", return_value=20 * 3600)
            time.sleep(0.05)
            assert clock.greeting() == "afternoon"


        def test_now_called_once(mocker):
            spy = mocker.spy(clock, "now")
            clock.greeting()
            time.sleep(0.05)
            assert spy.call_count == 1
    """,
}


@over_modes
def test_mock(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, "-ra")
    assert_counts(got, "9 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
