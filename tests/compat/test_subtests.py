"""pytest's subtests (the ``subtests`` fixture, pytest 9+) and unittest's ``subTest``: a failing
subtest fails its test in every mode, with the serial counts."""

from __future__ import annotations

import re

import pytest

from .conftest import over_modes

# The subtests fixture is built into pytest 9 and later.
pytest.importorskip("_pytest.subtests")

PLUGINS = ()

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "test_fixture_subtests.py": """
        import time


        def test_status_codes(subtests):
            for code in (200, 201, 500):
                with subtests.test(msg="code", code=code):
                    time.sleep(0.03)
                    print("checking", code)
                    assert code < 500


        def test_all_good(subtests):
            for i in range(3):
                with subtests.test(i=i):
                    time.sleep(0.02)
                    assert i >= 0


        def test_plain():
            time.sleep(0.05)
    """,
    "test_other.py": """
        import time
        import pytest


        @pytest.mark.parametrize("n", range(4))
        def test_other(n):
            time.sleep(0.03)
            print("output of test_other", n)
    """,
    "test_unittest_subtests.py": """
        import time
        import unittest


        class TestParsing(unittest.TestCase):
            def test_numbers(self):
                for s in ("1", "2", "x"):
                    with self.subTest(s=s):
                        time.sleep(0.03)
                        int(s)

            def test_fine(self):
                for s in ("1", "2"):
                    with self.subTest(s=s):
                        self.assertEqual(int(s), int(s))
    """,
}

CASES = {
    "plain": ((), "3 failed, 8 passed"),
    "verbose": (("-v",), "3 failed, 8 passed, 9 subtests passed"),
}

SHORT_SUMMARY = [
    "FAILED test_fixture_subtests.py::test_status_codes",
    "SUBFAILED(s='x') test_unittest_subtests.py::TestParsing::test_numbers",
    "SUBFAILED[code] (code=500) test_fixture_subtests.py::test_status_codes",
]


def short_summary(run) -> list[str]:
    """The short test summary's lines, without fleet's ``[t0] `` worker prefix (shown with -v)
    and cut before the message (pytest truncates it to the terminal's width)."""
    lines, inside = [], False
    for line in run.stdout.splitlines():
        if "short test summary info" in line:
            inside = True
        elif inside and line.startswith("=="):
            break
        elif inside and line.strip():
            line = re.sub(r"^\[[a-z0-9]+\] ", "", line.strip())
            lines.append(line.split(" - ", 1)[0])
    return sorted(lines)


@over_modes
@pytest.mark.parametrize("case", list(CASES))
def test_subtests(compat, mode: str, case: str) -> None:
    args, counts = CASES[case]
    got, serial = compat.against_serial(FILES, mode, *args, "-ra", key=case)
    assert got.counts == counts, f"[{mode}] {got.counts}\n{got.tail()}"
    assert got.ret == 1, f"[{mode}] exit {got.ret}: a failing subtest did not fail the run"
    found = sorted(set(re.findall(r"contains \d+ failed subtests?", got.stdout)))
    assert found == ["contains 1 failed subtest"], f"[{mode}] test_status_codes {found}, serial 'contains 1 failed subtest'\n{got.tail()}"
    assert short_summary(serial) == SHORT_SUMMARY
    assert short_summary(got) == SHORT_SUMMARY, f"[{mode}] short summary {short_summary(got)}, serial {SHORT_SUMMARY}"
