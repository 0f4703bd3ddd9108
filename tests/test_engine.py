"""The engine on what real suites do: exact fixture semantics, and threads that survive.

Each test here is a defect seen on a real third-party suite or on pytest's
own, reduced to a few lines and checked against a serial run of the same
suite in every mode.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from conftest import MODES, assert_like_serial, outcomes, run, run_with_junit

ALL_MODES = list(MODES.values())
MODE_IDS = list(MODES)


@pytest.mark.parametrize("mode", ALL_MODES, ids=MODE_IDS)
def test_fixture_depending_on_a_parametrized_fixture_follows_its_parameter(pytester, mode) -> None:
    pytester.makepyfile(
        test_fixture_params="""
        import pytest

        @pytest.fixture(scope="module", params=["a", "b"])
        def backend(request):
            return request.param

        @pytest.fixture(scope="module")
        def client(backend):
            return f"client-for-{backend}"

        def test_client(client, backend):
            assert client == f"client-for-{backend}"
        """,
        test_session_params="""
        import pytest

        @pytest.fixture(scope="session", params=["x", "y"])
        def engine(request):
            return request.param

        @pytest.fixture(scope="session")
        def conn(engine):
            return "conn-" + engine

        def test_conn(conn, engine):
            assert conn == "conn-" + engine
        """,
        test_module_parametrize="""
        import pytest

        @pytest.fixture(scope="module")
        def fix1(arg1):
            return arg1

        @pytest.mark.parametrize("arg1", ["v1", "v2"], scope="module")
        def test_value(fix1, arg1):
            assert fix1 == arg1
        """,
    )
    result = assert_like_serial(pytester, mode)
    assert outcomes(result) == {"passed": 6}


SKIP_BESIDE = """
import time
import pytest

state = {}

@pytest.fixture(scope="module")
def opened():
    state["module"] = "open"
    yield
    state["module"] = "closed"

@pytest.fixture
def resource(opened):
    state["function"] = "open"
    yield
    state["function"] = "closed"

def test_long(resource, tmp_path):
    time.sleep(0.8)
    assert state == {"module": "open", "function": "open"}, state
"""


@pytest.mark.parametrize("mode", [MODES["mt4"], MODES["mp2-mt2"]], ids=["mt4", "mp2-mt2"])
def test_a_test_skipped_by_a_mark_tears_down_only_what_it_used(pytester, mode) -> None:
    pytester.makepyfile(test_long=SKIP_BESIDE)
    for n in range(4):
        pytester.makepyfile(**{f"test_skips{n}": """
            import time, pytest

            def test_first(tmp_path):
                time.sleep(0.1)

            @pytest.mark.skip(reason="by a mark")
            def test_skipped():
                pass

            @pytest.mark.skipif(True, reason="by a condition")
            def test_skipped_too(tmp_path):
                pass
            """})
    result = assert_like_serial(pytester, mode)
    assert outcomes(result) == {"passed": 5, "skipped": 8}


@pytest.mark.parametrize("mode", [MODES["mp1"], MODES["mp2"], MODES["mt2"]], ids=["mp1", "mp2", "mt2"])
def test_module_fixtures_are_made_once_when_a_test_between_is_skipped(pytester, mode) -> None:
    pytester.makepyfile("""
        import pytest

        setups = []

        @pytest.fixture(scope="module")
        def db():
            setups.append(1)
            yield

        def test_a(db):
            pass

        @pytest.mark.skip(reason="by a mark")
        def test_skipped():
            pass

        def test_b(db):
            assert len(setups) == 1, f"module fixture set up {len(setups)} times"
        """)
    result = assert_like_serial(pytester, mode)
    assert outcomes(result) == {"passed": 2, "skipped": 1}


@pytest.mark.parametrize("mode", ALL_MODES, ids=MODE_IDS)
def test_a_parametrized_module_fixture_is_finalized_before_its_next_parameter(pytester, mode) -> None:
    pytester.makepyfile("""
        import pytest

        values = []

        @pytest.fixture(scope="module", params=[1, 2])
        def arg(request):
            x = request.param
            request.addfinalizer(lambda: values.append("fin%s" % x))
            return request.param

        def test_1(arg):
            values.append(arg)

        def test_2(arg):
            values.append(arg)

        def test_3_order():
            assert values == [1, 1, "fin1", 2, 2], values
        """)
    result = assert_like_serial(pytester, mode)
    assert outcomes(result) == {"passed": 5}


@pytest.mark.parametrize("mode", ALL_MODES, ids=MODE_IDS)
def test_a_session_parameter_used_by_several_modules_has_one_instance_at_a_time(pytester, mode) -> None:
    # markupsafe: a session fixture switches a module global per parameter
    pytester.makeconftest("""
        import pytest
        current = []

        @pytest.fixture(scope="session", params=["a", "b"])
        def impl(request):
            current.append(request.param)
            yield request.param
            current.remove(request.param)
        """)
    for name in ("one", "two", "three"):
        pytester.makepyfile(**{f"test_{name}": f"""
            import time
            from conftest import current
            def test_{name}(impl):
                time.sleep(0.05)
                assert current == [impl]
            def test_{name}_free():
                time.sleep(0.05)
            """})
    result = assert_like_serial(pytester, mode, "-p", "no:randomly")
    assert outcomes(result) == {"passed": 9}
    if "--mt" in mode or mode == MODES["mp2"]:
        result.stdout.fnmatch_lines(["run one after another, in pytest's parameter order: the tests of impl (6 tests)*"])


@pytest.mark.parametrize("mode", [MODES["mp2"], MODES["mp2-mt2"]], ids=["mp2", "mp2-mt2"])
def test_a_session_fixture_made_for_its_effects_runs_in_every_process(pytester, mode) -> None:
    # settings, env, a library configured: the fixture returns nothing
    pytester.makeconftest("""
        import os, pytest
        import settings

        @pytest.fixture(scope="session", autouse=True)
        def configure():
            settings.MODE = "configured"

        @pytest.fixture(scope="session", autouse=True)
        def environment():
            os.environ["APP_MODE"] = "test"
            return "test"
        """)
    pytester.makepyfile(settings="MODE = 'unset'")
    for m in range(4):
        pytester.makepyfile(**{f"test_m{m}": """
            import os, time
            import settings
            def test_configured():
                time.sleep(0.1)
                assert settings.MODE == "configured"
                assert os.environ["APP_MODE"] == "test"
            """})
    result = assert_like_serial(pytester, mode)
    assert outcomes(result) == {"passed": 4}
    result.stdout.fnmatch_lines([
        "*configure (session): once per worker process: it returns None*",
        "*environment (session): once per worker process: its set-up changed os.environ*",
    ])


@pytest.mark.parametrize("mode", ALL_MODES, ids=MODE_IDS)
def test_unhashable_parameters_are_one_instance_each(pytester, mode) -> None:
    pytester.makepyfile("""
        import pytest

        setups = []

        def pytest_generate_tests(metafunc):
            if "my_fixture" in metafunc.fixturenames:
                metafunc.parametrize("my_fixture", [[1], [2]], indirect=True)

        @pytest.fixture(scope="session")
        def my_fixture(request):
            setups.append(request.param)
            return request.param

        def test1(my_fixture):
            pass

        def test2(my_fixture):
            pass

        def test_count():
            assert setups == [[1], [2]], setups
        """)
    result = assert_like_serial(pytester, mode, "-p", "no:randomly")
    if pytest.version_tuple[:2] >= (8, 3):  # older pytest reuses only an identical parameter
        assert outcomes(result) == {"passed": 5}


@pytest.mark.parametrize("mode", [MODES["mt2"], MODES["mp1"], MODES["mp2-mt2"]], ids=["mt2", "mp1", "mp2-mt2"])
def test_fixture_errors_read_as_in_a_serial_run(pytester, mode) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.fixture(scope="module")
        def broken_module():
            raise ValueError("module set-up failed")

        @pytest.fixture
        def needs_broken(broken_module):
            return 1

        @pytest.fixture
        def broken_teardown():
            yield
            raise KeyError("teardown failed")

        def test_module_error(needs_broken):
            pass

        def test_teardown_error(broken_teardown):
            pass
        """)
    pytester.makepyfile(test_internal="""
        import pytest

        @pytest.fixture(name="custom")
        def empty_yield():
            if False:
                yield

        def test_no_yield(custom):
            pass
        """)

    def failure_text(result: pytest.RunResult) -> list[str]:
        lines = result.stdout.lines
        start = next(i for i, line in enumerate(lines) if "= ERRORS =" in line)
        end = next(i for i, line in enumerate(lines) if "short test summary info" in line or "- fleet -" in line)
        return sorted(lines[start:end])

    args = ["-p", "no:randomly", "test_fixture_errors_read_as_in_a_serial_run.py"]
    assert failure_text(run(pytester, *mode, *args)) == failure_text(run(pytester, *args))
    # An error raised inside pytest's own code: pytest shows its frames, never fleet's.
    internal = run(pytester, *mode, "test_internal.py")
    assert "custom did not yield a value" in internal.stdout.str()
    assert "fleet" not in "".join(failure_text(internal))
    assert "All traceback entries are hidden" not in internal.stdout.str()


@pytest.mark.parametrize("mode", [MODES["mt2"], MODES["mp2-mt2"]], ids=["mt2", "mp2-mt2"])
def test_warning_filters_behave_as_cpythons(pytester, mode) -> None:
    pytester.makepyfile("""
        import warnings
        import pytest

        def test_non_str_message_under_a_message_filter():
            with pytest.raises(TypeError):
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "test")
                    warnings.warn(1)

        def test_warning_instance_under_a_message_filter():
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                warnings.filterwarnings("ignore", "hidden")
                warnings.warn(UserWarning("shown"))
                warnings.warn("hidden text")
            assert [str(w.message) for w in seen] == ["shown"]

        def test_error_filter_raises():
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(DeprecationWarning):
                    warnings.warn("old", DeprecationWarning)
        """)
    result = assert_like_serial(pytester, mode)
    assert outcomes(result) == {"passed": 3}


@pytest.mark.parametrize("mode", [MODES["mt2"], MODES["mp1"], MODES["mp2-mt2"]], ids=["mt2", "mp1", "mp2-mt2"])
def test_log_capture_survives_a_test_that_resets_logging(pytester, mode) -> None:
    pytester.makepyfile("""
        import logging

        def test_1_library_resets_root_logger():
            logging.basicConfig(force=True)
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)

        def test_2_caplog(caplog):
            logging.getLogger("app").warning("hello")
            assert caplog.messages == ["hello"]

        def test_3_report_logs():
            logging.getLogger("app").warning("in the report")
            assert 0
        """)
    result = assert_like_serial(pytester, mode)
    assert outcomes(result) == {"passed": 2, "failed": 1}
    assert "in the report" in result.stdout.str()


@pytest.mark.parametrize("mode", [[], MODES["mt2"], MODES["mp1"], MODES["mp2-mt2"]], ids=["serial", "mt2", "mp1", "mp2-mt2"])
def test_a_hook_that_breaks_formatting_ends_the_run_and_never_hangs(pytester, mode) -> None:
    pytester.makeconftest("""
        import linecache
        import pytest

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            yield
            if item.name == "test_a" and call.when == "call":
                # what a thread-unsafe doctest can leave behind: every source lookup fails
                def broken(*args, **kwargs):
                    raise RecursionError("maximum recursion depth exceeded")

                linecache.getlines = broken
                raise RuntimeError("a plugin's hook failed")
        """)
    pytester.makepyfile("""
        def test_a():
            pass

        def test_b():
            pass
        """)
    # Serial pytest cannot even print the INTERNALERROR (linecache is broken)
    # and ends with exit code 1; fleet ends the run as promptly.
    result = run(pytester, *mode, timeout=60)
    assert result.ret in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERNAL_ERROR)
    assert "a plugin's hook failed" in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("mode", [MODES["mt2"], MODES["mp2-mt2"]], ids=["mt2", "mp2-mt2"])
def test_a_test_that_mocks_every_clock_beside_others_never_stalls_the_run(pytester, mode) -> None:
    """freezegun replaces time.monotonic and time.time for every thread. fleet
    once paced its main thread by time.monotonic: a pause computed across the
    mock's end slept for 10^12 s (python-dateutil hung under --mt auto)."""
    pytester.makepyfile(test_clock="""
        import time, pytest

        def test_mocks_the_clocks(monkeypatch):
            monkeypatch.setattr(time, "monotonic", lambda: 1e12)
            monkeypatch.setattr(time, "time", lambda: 1e12)
            monkeypatch.setattr(time, "perf_counter", lambda: 1e12)
            time.sleep(0.5)

        @pytest.mark.parametrize("n", range(20))
        def test_beside(n):
            time.sleep(0.05)
        """)
    result = run(pytester, *mode, "--group-unit", "function", timeout=60)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert outcomes(result) == {"passed": 21}


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="CPython 3.11/3.12's ast race")
def test_failures_formatted_on_many_threads_at_once_lose_nothing(pytester) -> None:
    """CPython 3.11's ast.parse is not safe on several threads; pytest parses
    source to format every failure. Many failures at once, with GC pressure."""
    pytester.makepyfile(textwrap.dedent("""
        import sys
        import pytest

        class Dying:
            def __del__(self):
                pass

        @pytest.fixture(autouse=True)
        def pressure():
            sys.setswitchinterval(1e-6)
            for _ in range(200):
                a = Dying()
                a.me = a

        @pytest.mark.parametrize("n", range(400))
        def test_fails(n):
            x = [Dying() for _ in range(20)]
            assert n < 0, "failing on purpose"
        """))
    result, got = run_with_junit(pytester, "--mt", "8", "--group-unit", "function", timeout=300)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    assert list(got.values()).count("failed") == 400
    assert "SystemError" not in result.stdout.str()


@pytest.mark.parametrize("mode", [MODES["mp1"], MODES["mp2"]], ids=["mp1", "mp2"])
def test_a_pytest_run_inside_a_test_sees_plain_pytest(pytester, mode) -> None:
    """pytest's own suite runs pytest in-process (``pytester.inline_run``);
    fleet's routing of fixture values is for fleet's session only."""
    pytester.makeconftest('pytest_plugins = ["pytester"]')
    pytester.makepyfile('''
        def test_inner_order(pytester):
            pytester.makepyfile("""
                import pytest
                values = []

                @pytest.fixture(scope="module", params=[1, 2])
                def arg(request):
                    x = request.param
                    request.addfinalizer(lambda: values.append("fin%s" % x))
                    return x

                @pytest.fixture(scope="module")
                def dependent(arg):
                    return arg * 10

                def test_1(arg, dependent):
                    values.append(arg)
                    assert dependent == arg * 10

                def test_2_order():
                    assert values == [1, "fin1", 2], values
            """)
            reprec = pytester.inline_run("-p", "no:cacheprovider", "-p", "no:asyncio")
            reprec.assertoutcome(passed=3)
        ''')
    result = assert_like_serial(pytester, mode, "test_a_pytest_run_inside_a_test_sees_plain_pytest.py")
    assert outcomes(result) == {"passed": 1}
