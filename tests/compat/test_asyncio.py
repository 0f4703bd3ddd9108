"""pytest-asyncio: loop scopes from marks and from the ini defaults; async fixtures on their loops."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest_asyncio = pytest.importorskip("pytest_asyncio")

PLUGINS = ("pytest-asyncio",)

VERSION = tuple(int(p) for p in pytest_asyncio.__version__.split(".")[:2] if p.isdigit())
# loop_scope= (and the ini defaults) came with pytest-asyncio 0.24; pytest 8.0
# resolves to 0.23, where a mark's and a fixture's loop is given by scope=.
LOOP_SCOPE = VERSION >= (0, 24)

_SESSION_MARKED = """
        import asyncio
        import pytest


        @pytest.mark.asyncio(loop_scope="session")
        @pytest.mark.parametrize("n", range(3))
        async def test_session_loop(broker, n):
            assert asyncio.get_running_loop() is broker["loop"]
            await broker["queue"].put(n)
            await asyncio.sleep(0.03)
            assert not broker["queue"].empty()
            broker["queue"].get_nowait()
    """

MARKS = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
    """,
    "conftest.py": '''
        import asyncio
        import pytest_asyncio


        @pytest_asyncio.fixture
        async def client():
            """A per-test client bound to the test's running loop."""
            await asyncio.sleep(0.02)
            loop = asyncio.get_running_loop()
            yield loop
            await asyncio.sleep(0.01)


        @pytest_asyncio.fixture(loop_scope="session", scope="session")
        async def broker():
            """A session-wide broker living on the session loop."""
            queue = asyncio.Queue()
            return {"loop": asyncio.get_running_loop(), "queue": queue}
    ''',
    "test_func_a.py": """
        import asyncio
        import pytest


        @pytest.mark.asyncio
        @pytest.mark.parametrize("n", range(3))
        async def test_function_loop(client, n):
            assert client is asyncio.get_running_loop()
            await asyncio.sleep(0.03)
    """,
    "test_func_b.py": """
        import asyncio
        import pytest


        @pytest.mark.asyncio
        @pytest.mark.parametrize("n", range(3))
        async def test_function_loop(client, n):
            assert client is asyncio.get_running_loop()
            await asyncio.sleep(0.03)
    """,
    "test_module_loop.py": """
        import asyncio
        import pytest
        import pytest_asyncio

        pytestmark = pytest.mark.asyncio(loop_scope="module")

        loops = []


        @pytest_asyncio.fixture(loop_scope="module", scope="module")
        async def conn():
            return asyncio.get_running_loop()


        @pytest.mark.parametrize("n", range(3))
        async def test_same_module_loop(conn, n):
            loops.append(asyncio.get_running_loop())
            assert asyncio.get_running_loop() is conn
            await asyncio.sleep(0.03)
    """,
    # the same tests in two modules: one session loop across both
    "test_session_a.py": _SESSION_MARKED,
    "test_session_b.py": _SESSION_MARKED,
}

_SESSION_TEST = """
    import asyncio
    import pytest


    @pytest.mark.parametrize("n", range(3))
    async def test_uses_session_loop(pool, request_ctx, n):
        # no marks: auto mode + asyncio_default_test_loop_scope = session
        assert asyncio.get_running_loop() is pool["loop"] is request_ctx
        async with pool["lock"]:
            await asyncio.sleep(0.03)
"""

INI = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
        asyncio_mode = auto
        asyncio_default_test_loop_scope = session
        asyncio_default_fixture_loop_scope = session
    """,
    "conftest.py": '''
        import asyncio
        import pytest


        @pytest.fixture(scope="session")
        async def pool():
            """An async session fixture: in auto mode, on the session loop (ini default)."""
            await asyncio.sleep(0.01)
            return {"loop": asyncio.get_running_loop(), "lock": asyncio.Lock()}


        @pytest.fixture
        async def request_ctx(pool):
            # function-scoped async fixture; fixture loop scope is 'session' by the ini option
            async with pool["lock"]:
                await asyncio.sleep(0.01)
            return asyncio.get_running_loop()
    ''',
    "test_a.py": _SESSION_TEST,
    "test_b.py": _SESSION_TEST,
    "test_c.py": _SESSION_TEST,
}


def for_installed_version(files: dict[str, str]) -> dict[str, str]:
    """The marks suite in the spelling of pytest-asyncio < 0.24 (``scope=``)."""
    if LOOP_SCOPE:
        return files
    out = {}
    for name, text in files.items():
        text = text.replace('loop_scope="session", scope="session"', 'scope="session"')
        text = text.replace('loop_scope="module", scope="module"', 'scope="module"')
        text = text.replace("asyncio(loop_scope=", "asyncio(scope=")
        text = text.replace("        asyncio_default_fixture_loop_scope = function\n", "")
        out[name] = text
    return out


@over_modes
def test_asyncio_loop_scopes_from_marks(compat, mode: str) -> None:
    got, serial = compat.against_serial(for_installed_version(MARKS), mode, "-ra")
    assert_counts(got, "15 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"


@over_modes
def test_asyncio_loop_scopes_from_ini(compat, mode: str) -> None:
    """Auto mode with a session loop by default: no marks at all."""
    # asyncio_default_test_loop_scope is new in pytest-asyncio 0.24 (pytest 8.0 gets 0.23).
    pytest.importorskip("pytest_asyncio", minversion="0.24")
    got, serial = compat.against_serial(INI, mode, "-ra")
    assert_counts(got, "9 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
