"""pytest-xdist installed (and turned off with -p no:xdist): what xdist-aware suites read
(worker_id, PYTEST_XDIST_WORKER, xdist's helpers, xdist_group) is consistent in every mode."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, assert_like_serial, over_modes

pytest.importorskip("xdist")

PLUGINS = ("pytest-xdist",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "conftest.py": '''
        import fcntl
        import json
        import os
        import pytest


        def produce_expensive_data():
            return {"token": "secret", "made_by": os.getpid()}


        @pytest.fixture(scope="session")
        def session_data(tmp_path_factory, worker_id):
            """pytest-xdist's documented recipe: make it once, share it between workers."""
            if worker_id == "master":
                return produce_expensive_data()
            root_tmp_dir = tmp_path_factory.getbasetemp().parent
            fn = root_tmp_dir / "data.json"
            with open(str(fn) + ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if fn.is_file():
                    data = json.loads(fn.read_text())
                else:
                    data = produce_expensive_data()
                    fn.write_text(json.dumps(data))
            return data


        @pytest.fixture(scope="session")
        def db_name(worker_id):
            """One database per worker, named after it."""
            return f"test_db_{worker_id}"
    ''',
    "test_data.py": """
        import time
        import pytest


        @pytest.mark.parametrize("n", range(4))
        def test_shared_data(session_data, db_name, n):
            time.sleep(0.05)
            assert session_data["token"] == "secret"
            assert db_name.startswith("test_db_")
    """,
    "test_groups.py": """
        import time
        import pytest

        events = []


        @pytest.mark.xdist_group(name="serial_db")
        def test_group_first():
            events.append("first")
            time.sleep(0.05)


        @pytest.mark.xdist_group(name="serial_db")
        def test_group_second():
            assert events == ["first"], "xdist_group tests must run in one process, in order"
    """,
    "test_identity.py": r"""
        import os
        import re
        import pytest
        import xdist


        def test_worker_id_matches_env(worker_id, request):
            # fleet's documented identity: worker_id names the worker thread or
            # process (t2, p1, p1t3); xdist's ids name the process (p1), and
            # are unset when the run has one process (--mt alone)
            env = os.environ.get("PYTEST_XDIST_WORKER")
            if env is None:
                assert worker_id == "master" or re.fullmatch(r"t\d+", worker_id), worker_id
                assert not xdist.is_xdist_worker(request)
            else:
                process = re.fullmatch(r"(p\d+)(t\d+)?", worker_id).group(1)
                assert env == process, f"worker_id={worker_id} but PYTEST_XDIST_WORKER={env}"
                assert xdist.is_xdist_worker(request)
                assert request.config.workerinput["workerid"] == process
                assert int(os.environ["PYTEST_XDIST_WORKER_COUNT"]) >= 1


        def test_testrun_uid(testrun_uid):
            env = os.environ.get("PYTEST_XDIST_TESTRUNUID")
            assert env is None or env == testrun_uid


        def test_get_worker_id(request, worker_id):
            assert xdist.get_xdist_worker_id(request) == os.environ.get("PYTEST_XDIST_WORKER", "master")
    """,
}

VARIANTS = {"installed": (), "no-xdist": ("-p", "no:xdist")}


@over_modes
@pytest.mark.parametrize("xdist", list(VARIANTS))
def test_xdist(compat, mode: str, xdist: str) -> None:
    args = (*VARIANTS[xdist], "-ra")
    suite = compat.suite(FILES)
    serial = compat.serial(lambda: suite.run("serial", *args), key=xdist)
    got = serial if mode == "serial" else suite.run(mode, *args)

    assert_like_serial(got, serial)
    assert_counts(got, "9 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
