"""pytest-cov: the coverage report and --cov-fail-under of a parallel run are the serial run's."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_cov")

PLUGINS = ("pytest-cov",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
        testpaths = tests
        pythonpath = .
    """,
    "app/__init__.py": "",
    "app/pricing.py": '''
        """Order pricing: the code under test."""


        def subtotal(lines):
            total = 0
            for price, qty in lines:
                if qty < 0:
                    raise ValueError("negative quantity")
                total += price * qty
            return total


        def discount(total, code):
            if code == "TEN":
                return total * 0.9
            if code == "HALF":
                return total * 0.5
            return total


        def tax(total, region):
            rates = {"EU": 0.2, "US": 0.07}
            return round(total * rates.get(region, 0.0), 2)


        def legacy_rounding(value):  # never called by the tests
            if value > 100:
                return int(value)
            return round(value, 1)
    ''',
    "app/shipping.py": """
        import time


        def cost(weight_kg, express=False):
            time.sleep(0.05)  # a rate lookup
            base = 5 + 2 * weight_kg
            if express:
                base *= 2
            return base


        def eta_days(region):
            if region == "EU":
                return 2
            if region == "US":
                return 5
            return 10


        def unused_helper(x):  # never called
            y = x * 2
            return y + 1
    """,
    "tests/test_pricing.py": """
        import time
        import pytest
        from app import pricing


        def test_subtotal():
            time.sleep(0.05)
            assert pricing.subtotal([(10, 2), (5, 1)]) == 25


        def test_subtotal_negative():
            with pytest.raises(ValueError):
                pricing.subtotal([(1, -1)])


        @pytest.mark.parametrize("code,expected", [("TEN", 90), ("HALF", 50), ("NONE", 100)])
        def test_discount(code, expected):
            time.sleep(0.05)
            assert pricing.discount(100, code) == expected


        def test_tax():
            assert pricing.tax(100, "EU") == 20
            assert pricing.tax(100, "XX") == 0
    """,
    "tests/test_shipping.py": """
        from app import shipping


        def test_cost():
            assert shipping.cost(1) == 7


        def test_cost_express():
            assert shipping.cost(1, express=True) == 14


        def test_eta():
            assert shipping.eta_days("EU") == 2
            assert shipping.eta_days("US") == 5
            assert shipping.eta_days("XX") == 10
    """,
}

ARGS = ("--cov=app", "--cov-report=term-missing", "--cov-fail-under=80")


@over_modes
def test_cov_report_and_fail_under(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, *ARGS)
    # The serial result (pytest-cov 7.1, coverage 7.17): 9 passed, 86 %, exit 0.
    assert_counts(got, "9 passed")
    assert got.ret == 0, f"[{mode}] exit {got.ret}: coverage failed the run\n{got.tail()}"
    total, serial_total = got.lines(r"^TOTAL\s"), serial.lines(r"^TOTAL\s")
    assert total and total == serial_total, f"[{mode}] coverage {total}, serial {serial_total}\n{got.tail()}"
    assert total[-1].split()[-1] == "86%", total
    required = got.lines(r"Required test coverage")
    assert required == ["Required test coverage of 80% reached. Total coverage: 86.11%"], (
        f"[{mode}] {required}\n{got.tail()}")
    # Every file's line of the report, missing lines included.
    assert got.lines(r"^app/") == serial.lines(r"^app/"), f"[{mode}] per-file coverage lines differ from serial\n{got.tail()}"


CONTEXT_ARGS = ("--cov=app", "--cov-context=test", "--cov-report=json:cov.json")


def _contexts(run) -> dict[str, dict[str, list[str]]]:
    """Per file, per line: the test contexts that covered it."""
    data = json.loads(run.file("cov.json").read_text())
    return {
        name: {line: sorted(ctx) for line, ctx in info.get("contexts", {}).items()}
        for name, info in data["files"].items()
    }


@over_modes
def test_cov_contexts_per_test(compat, mode: str) -> None:
    """``--cov-context=test``: each line is attributed to the tests that ran it."""
    files = {**FILES, ".coveragerc": "[json]\nshow_contexts = True\n"}
    got, serial = compat.against_serial(files, mode, *CONTEXT_ARGS)
    assert_counts(got, "9 passed")
    assert got.file("cov.json").exists(), f"[{mode}] no cov.json\n{got.tail()}"
    shipping = _contexts(got)["app/shipping.py"]
    for line in ("5", "6"):
        assert [c.split("::")[-1] for c in shipping.get(line, [])] == [
            "test_cost_express|run", "test_cost|run"], (f"[{mode}] app/shipping.py line {line}: {shipping.get(line)}")
    if got is not serial:
        mine, theirs = _contexts(got), _contexts(serial)
        wrong = [f"{f}:{line} {mine.get(f, {}).get(line)} (serial {ctx})"
                 for f in theirs for line, ctx in theirs[f].items() if mine.get(f, {}).get(line) != ctx]
        assert not wrong, f"[{mode}] {len(wrong)} line(s) attributed to other contexts than serial: " + "; ".join(wrong[:5])
