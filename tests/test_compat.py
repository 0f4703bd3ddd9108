"""Other kinds of tests pytest runs: xunit set-up functions, unittest, doctest."""

from __future__ import annotations

import pytest

from conftest import outcomes, run


def test_xunit_and_unittest_set_up_once_like_serial(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_xunit="""
        import time
        CALLS = []
        def setup_module(module):
            CALLS.append("setup_module")
        def teardown_module(module):
            print("TEARDOWN_MODULE", CALLS.count("setup_module"))
        class TestThing:
            @classmethod
            def setup_class(cls):
                CALLS.append("setup_class")
            def setup_method(self, method):
                self.ready = True
            def test_1(self):
                time.sleep(0.05)
                assert self.ready and CALLS.count("setup_class") == 1
            def test_2(self):
                time.sleep(0.05)
                assert self.ready and CALLS.count("setup_class") == 1
        def test_plain():
            time.sleep(0.05)
            assert CALLS.count("setup_module") == 1
        """,
        test_unit="""
        import time, unittest
        class TestCase(unittest.TestCase):
            opened = 0
            @classmethod
            def setUpClass(cls):
                cls.opened += 1
            def test_a(self):
                time.sleep(0.05)
                self.assertEqual(self.opened, 1)
            def test_b(self):
                time.sleep(0.05)
                self.assertEqual(self.opened, 1)
            def test_fails(self):
                self.assertEqual(1, 2)
            @unittest.skip("not here")
            def test_skipped(self):
                pass
        """,
        helpers='''
        def double(x):
            """
            >>> double(2)
            4
            >>> double(3)
            7
            """
            return 2 * x
        ''',
    )
    serial = run(pytester, "test_xunit.py", "test_unit.py")
    threaded = run(pytester, "test_xunit.py", "test_unit.py", "--mt", "6", "--group-unit", "function", "-s")
    assert outcomes(threaded) == outcomes(serial) == {"passed": 5, "failed": 1, "skipped": 1}
    assert "TEARDOWN_MODULE 1" in threaded.stdout.str()
    # Doctests in their own run: --doctest-modules would import the test
    # modules a second time, which older pytest handles differently.
    serial = run(pytester, "--doctest-modules", "helpers.py")
    threaded = run(pytester, "--doctest-modules", "helpers.py", "--mt", "2")
    assert outcomes(threaded) == outcomes(serial) == {"failed": 1}


def test_pytest_timeout_works_under_threads(pytester: pytest.Pytester) -> None:
    """pytest-timeout uses its thread method off the main thread and ends the run."""
    pytest.importorskip("pytest_timeout")
    pytester.makepyfile(
        """
        import time
        def test_hangs():
            time.sleep(30)
        def test_quick():
            pass
        """
    )
    result = run(pytester, "--mt", "2", "--group-unit", "function", "--timeout", "1", timeout=60)
    assert result.ret == 1
    assert "Timeout" in result.stdout.str() + result.stderr.str()
    assert "AssertionError" not in result.stderr.str()


def test_asyncio_tests_sharing_a_loop_never_run_side_by_side(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads must not drive one pytest-asyncio event loop at once."""
    pytest_asyncio = pytest.importorskip("pytest_asyncio")
    monkeypatch.delenv("PYTEST_ADDOPTS")
    version = tuple(int(p) for p in pytest_asyncio.__version__.split(".")[:2])
    keyword = "loop_scope" if version >= (0, 24) else "scope"
    loop_default = "asyncio_default_fixture_loop_scope = function\n" if version >= (0, 24) else ""
    pytester.makeini("[pytest]\nasyncio_mode = strict\n" + loop_default)
    pytester.makepyfile(
        f"""
        import asyncio, pytest
        @pytest.mark.asyncio({keyword}="module")
        @pytest.mark.parametrize("n", range(6))
        async def test_shared_loop(n):
            await asyncio.sleep(0.05)
        @pytest.mark.asyncio
        @pytest.mark.parametrize("n", range(6))
        async def test_own_loop(n):
            await asyncio.sleep(0.05)
        """
    )
    result = run(pytester, "--mt", "8", "--group-unit", "function")
    assert outcomes(result) == {"passed": 12}, result.stdout.str()[-2000:]
