"""Higher-scoped fixtures: once per scope instance, torn down once, after their last user."""

from __future__ import annotations

import pytest

from conftest import PROBE, outcomes, read_events, run

SHARED = PROBE + r'''
@pytest.fixture(scope="session")
def login():
    record(kind="setup", fixture="login")
    time.sleep(0.3)
    yield "token"
    record(kind="teardown", fixture="login")

@pytest.fixture(scope="module")
def per_module(request, login):
    name = request.module.__name__
    record(kind="setup", fixture="per_module", scope=name)
    time.sleep(0.1)
    yield name
    record(kind="teardown", fixture="per_module", scope=name)

@pytest.fixture(scope="class")
def per_class(request):
    name = request.cls.__name__
    record(kind="setup", fixture="per_class", scope=name)
    yield name
    record(kind="teardown", fixture="per_class", scope=name)
'''


def suite(pytester: pytest.Pytester, modules: int = 4, tests: int = 5) -> None:
    pytester.makeconftest(SHARED)
    for m in range(modules):
        body = "import time\n" + "".join(
            f"def test_{i}(login, per_module):\n"
            f"    time.sleep(0.02)\n"
            f"    assert login == 'token'\n"
            f"    assert per_module == __name__\n"
            for i in range(tests)
        )
        pytester.makepyfile(**{f"test_mod{m}": body})


def events_of(pytester: pytest.Pytester) -> list[dict]:
    return read_events(pytester.path / "events.jsonl")


@pytest.mark.parametrize("args", [["--mt", "8"], ["--mt", "8", "--group-unit", "function"]])
def test_session_once_module_once_per_module_each_torn_down_once(pytester, args) -> None:
    suite(pytester)
    result = run(pytester, *args)
    assert outcomes(result) == {"passed": 20}
    events = events_of(pytester)
    kinds = [(e["kind"], e.get("fixture"), e.get("scope")) for e in events if e.get("fixture")]
    assert kinds.count(("setup", "login", None)) == 1
    assert kinds.count(("teardown", "login", None)) == 1
    for m in range(4):
        assert kinds.count(("setup", "per_module", f"test_mod{m}")) == 1
        assert kinds.count(("teardown", "per_module", f"test_mod{m}")) == 1


def test_teardown_comes_after_the_last_user_finished(pytester) -> None:
    suite(pytester)
    run(pytester, "--mt", "8", "--group-unit", "function")
    events = events_of(pytester)
    ends = {e["test"]: e["t"] for e in events if e["kind"] == "end"}
    starts = {e["test"]: e["t"] for e in events if e["kind"] == "start"}
    for e in events:
        if e["kind"] != "teardown":
            continue
        users = [t for t in ends if e["fixture"] == "login" or t.startswith(e["scope"] + ".py")]
        assert users and all(ends[t] <= e["t"] for t in users), e
        setup = next(s for s in events if s["kind"] == "setup" and s.get("fixture") == e["fixture"]
                     and s.get("scope") == e.get("scope"))
        assert all(setup["t"] <= starts[t] for t in users)


def test_concurrent_modules_each_get_their_own_module_value(pytester) -> None:
    """A conftest module fixture used by two modules at once: two instances."""
    suite(pytester, modules=6, tests=3)
    result = run(pytester, "--mt", "6")
    assert outcomes(result) == {"passed": 18}
    running = max(e["running"] for e in events_of(pytester) if e["kind"] == "start")
    assert running == 6


def test_class_fixture_per_class(pytester) -> None:
    pytester.makeconftest(SHARED)
    pytester.makepyfile(
        """
        import time
        class TestA:
            def test_1(self, per_class): time.sleep(0.05); assert per_class == "TestA"
            def test_2(self, per_class): time.sleep(0.05); assert per_class == "TestA"
        class TestB:
            def test_1(self, per_class): time.sleep(0.05); assert per_class == "TestB"
            def test_2(self, per_class): time.sleep(0.05); assert per_class == "TestB"
        """
    )
    result = run(pytester, "--mt", "4", "--group-unit", "function")
    assert outcomes(result) == {"passed": 4}
    setups = [e["scope"] for e in events_of(pytester) if e["kind"] == "setup"]
    assert sorted(setups) == ["TestA", "TestB"]


def test_parametrized_session_fixture_once_per_parameter(pytester) -> None:
    pytester.makeconftest(
        PROBE
        + '''
@pytest.fixture(scope="session", params=["pg", "sqlite"])
def db(request):
    record(kind="setup", fixture="db", scope=request.param)
    yield request.param
    record(kind="teardown", fixture="db", scope=request.param)
'''
    )
    pytester.makepyfile(
        "import pytest, time\n"
        + "".join(f"def test_{i}(db):\n    time.sleep(0.02)\n    assert db in ('pg', 'sqlite')\n" for i in range(6))
    )
    result = run(pytester, "--mt", "6", "--group-unit", "function")
    assert outcomes(result) == {"passed": 12}
    fixture_events = sorted((e["kind"], e["scope"]) for e in events_of(pytester) if e.get("fixture"))
    assert fixture_events == [("setup", "pg"), ("setup", "sqlite"), ("teardown", "pg"), ("teardown", "sqlite")]


def test_function_fixtures_are_never_shared(pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, time, threading
        LIVE = set()
        LOCK = threading.Lock()
        @pytest.fixture
        def box():
            value = object()
            with LOCK:
                LIVE.add(id(value))
            yield value
            with LOCK:
                LIVE.discard(id(value))
        @pytest.mark.parametrize("i", range(30))
        def test_box(i, box, request):
            mine = id(box)
            time.sleep(0.01)
            assert request.getfixturevalue("box") is box
            assert id(box) == mine and mine in LIVE
        """
    )
    result = run(pytester, "--mt", "10", "--group-unit", "function")
    assert outcomes(result) == {"passed": 30}


def test_failing_setup_fails_every_test_that_needs_it_like_serial(pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        CALLS = []
        @pytest.fixture(scope="session")
        def broken():
            CALLS.append(1)
            raise RuntimeError(f"cannot connect (attempt {len(CALLS)})")
        """
    )
    pytester.makepyfile(
        "import time\n"
        + "".join(f"def test_{i}(broken):\n    pass\n" for i in range(8))
        + "def test_fine():\n    pass\n"
    )
    serial = run(pytester)
    threaded = run(pytester, "--mt", "4", "--group-unit", "function")
    assert outcomes(threaded) == outcomes(serial) == {"passed": 1, "error": 8}
    # The set-up ran once and its error is reused, as in serial pytest.
    assert threaded.stdout.str().count("cannot connect (attempt 1)") >= 8
    assert "attempt 2" not in threaded.stdout.str()


def test_teardown_error_is_reported_like_serial(pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        @pytest.fixture(scope="module")
        def leaky():
            yield
            raise RuntimeError("teardown broke")
        """
    )
    pytester.makepyfile(
        test_a="def test_1(leaky): pass\ndef test_2(leaky): pass",
        test_b="def test_1(leaky): pass",
    )
    serial = run(pytester)
    threaded = run(pytester, "--mt", "2", "--group-unit", "function")
    assert outcomes(threaded) == outcomes(serial) == {"passed": 3, "error": 2}
    assert threaded.ret == serial.ret == 1


@pytest.mark.parametrize("stop", [["-x"], ["--maxfail=2"]])
def test_maxfail_stops_handing_out_and_tears_everything_down(pytester, stop) -> None:
    pytester.makeconftest(SHARED)
    pytester.makepyfile(
        "import time\n"
        + "".join(f"def test_{i:02d}(login):\n    time.sleep(0.05)\n    assert {i} % 5 != 4\n" for i in range(40))
    )
    result = run(pytester, "--mt", "2", "--group-unit", "function", *stop)
    assert result.ret == 1
    found = outcomes(result)
    assert found["failed"] == (1 if stop == ["-x"] else 2)
    assert found.get("passed", 0) < 20
    events = events_of(pytester)
    assert [e["kind"] for e in events if e.get("fixture") == "login"] == ["setup", "teardown"]
    result.stdout.fnmatch_lines(["*stopping after * failure*"])


def test_workers_set_up_different_modules_side_by_side(pytester) -> None:
    """With --group-unit function, N workers open N modules, not all the first one."""
    pytester.makeconftest(
        PROBE
        + '''
@pytest.fixture(scope="module")
def slow_module(request):
    record(kind="setup-start", scope=request.module.__name__)
    time.sleep(0.3)
    record(kind="setup-end", scope=request.module.__name__)
'''
    )
    for m in range(4):
        pytester.makepyfile(**{f"test_m{m}": "".join(f"def test_{i}(slow_module): pass\n" for i in range(6))})
    result = run(pytester, "--mt", "4", "--group-unit", "function")
    assert outcomes(result) == {"passed": 24}
    events = events_of(pytester)
    starts = [e["t"] for e in events if e["kind"] == "setup-start"]
    ends = [e["t"] for e in events if e["kind"] == "setup-end"]
    assert len(starts) == 4
    assert max(starts) < min(ends), "module set-ups ran one after another"


def test_package_fixture_once_per_package(pytester) -> None:
    pytester.makeconftest(PROBE)
    for pkg in ("alpha", "beta"):
        pytester.mkpydir(pkg)
        (pytester.path / pkg / "conftest.py").write_text(
            "import pytest, time\n"
            "from conftest import record\n"
            "@pytest.fixture(scope='package')\n"
            "def per_package(request):\n"
            "    record(kind='setup', fixture='per_package', scope=__name__)\n"
            "    time.sleep(0.1)\n"
            "    yield __name__\n"
            "    record(kind='teardown', fixture='per_package', scope=__name__)\n"
        )
        for m in range(3):
            (pytester.path / pkg / f"test_{pkg}{m}.py").write_text(
                "import time\n"
                + "".join(f"def test_{i}(per_package):\n    time.sleep(0.02)\n" for i in range(3))
            )
    result = run(pytester, "--mt", "6", "--group-unit", "function")
    assert outcomes(result) == {"passed": 18}
    events = [(e["kind"], e["scope"]) for e in events_of(pytester) if e.get("fixture")]
    assert sorted(events) == [
        ("setup", "alpha.conftest"), ("setup", "beta.conftest"),
        ("teardown", "alpha.conftest"), ("teardown", "beta.conftest"),
    ]


def test_tmp_path_is_unique_per_test_under_threads(pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, time
        @pytest.mark.parametrize("n", range(40))
        def test_tmp(n, tmp_path):
            assert tmp_path.is_dir() and not any(tmp_path.iterdir())
            (tmp_path / "mine").write_text(str(n))
            time.sleep(0.01)
            assert (tmp_path / "mine").read_text() == str(n)
        """
    )
    assert outcomes(run(pytester, "--mt", "16", "--group-unit", "function")) == {"passed": 40}


def test_dynamic_getfixturevalue_of_a_shared_fixture(pytester) -> None:
    pytester.makeconftest(SHARED)
    pytester.makepyfile(
        """
        import pytest, time
        @pytest.mark.parametrize("n", range(12))
        def test_dynamic(n, request):
            time.sleep(0.01)
            assert request.getfixturevalue("login") == "token"
        """
    )
    assert outcomes(run(pytester, "--mt", "6", "--group-unit", "function")) == {"passed": 12}
    kinds = [e["kind"] for e in events_of(pytester) if e.get("fixture") == "login"]
    assert kinds == ["setup", "teardown"]


def test_class_fixture_outside_a_class_is_per_test(pytester) -> None:
    pytester.makeconftest(
        """
        import pytest, itertools
        COUNTER = itertools.count()
        @pytest.fixture(scope="class")
        def token():
            return next(COUNTER)
        """
    )
    pytester.makepyfile(
        """
        import time
        SEEN = []
        def check(token):
            # Outside a class, a class fixture is per test: no test sees another's value.
            assert token not in SEEN
            SEEN.append(token)
            time.sleep(0.05)
        def test_a(token): check(token)
        def test_b(token): check(token)
        def test_c(token): check(token)
        def test_d():
            pass
        """
    )
    serial = run(pytester)
    threaded = run(pytester, "--mt", "3", "--group-unit", "function")
    assert outcomes(threaded) == outcomes(serial) == {"passed": 4}


def test_module_params_once_each_per_module_under_function_groups(pytester) -> None:
    pytester.makeconftest(
        PROBE
        + '''
@pytest.fixture(scope="module", params=["x", "y"])
def flavour(request):
    record(kind="setup", fixture="flavour", scope=f"{request.module.__name__}:{request.param}")
    time.sleep(0.05)
    yield request.param
    record(kind="teardown", fixture="flavour", scope=f"{request.module.__name__}:{request.param}")
'''
    )
    for m in range(2):
        pytester.makepyfile(**{f"test_p{m}": "".join(
            f"def test_{i}(flavour):\n    assert flavour in 'xy'\n" for i in range(4))})
    result = run(pytester, "--mt", "8", "--group-unit", "function")
    assert outcomes(result) == {"passed": 16}
    setups = sorted(e["scope"] for e in events_of(pytester) if e["kind"] == "setup")
    teardowns = sorted(e["scope"] for e in events_of(pytester) if e["kind"] == "teardown")
    assert setups == teardowns == ["test_p0:x", "test_p0:y", "test_p1:x", "test_p1:y"]


def test_fixtures_using_worker_id_are_per_worker(pytester) -> None:
    """xdist-style suites: a session fixture built from worker_id, once per worker."""
    pytester.makeconftest(
        PROBE
        + '''
@pytest.fixture(scope="session")
def database(worker_id):
    record(kind="setup", fixture="database", scope=worker_id)
    yield f"db-{worker_id}"
    record(kind="teardown", fixture="database", scope=worker_id)

@pytest.fixture(scope="session")
def schema(database):
    return database + "/schema"
'''
    )
    pytester.makepyfile(
        """
        import pytest, time
        @pytest.mark.parametrize("n", range(12))
        def test_db(n, schema, worker_id):
            time.sleep(0.05)
            assert schema == f"db-{worker_id}/schema"
        """
    )
    result = run(pytester, "--mt", "3", "--group-unit", "function")
    assert outcomes(result) == {"passed": 12}
    events = [(e["kind"], e["scope"]) for e in events_of(pytester) if e.get("fixture")]
    setups = sorted(w for kind, w in events if kind == "setup")
    assert setups == ["t0", "t1", "t2"]
    assert sorted(w for kind, w in events if kind == "teardown") == setups
    # Serially the same suite sees one worker, "master".
    (pytester.path / "events.jsonl").unlink()
    assert outcomes(run(pytester)) == {"passed": 12}
    assert [e["scope"] for e in events_of(pytester) if e["kind"] == "setup"] == ["master"]
