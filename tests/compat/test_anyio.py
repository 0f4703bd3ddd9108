"""anyio's pytest plugin: async tests and fixtures on asyncio and on trio (anyio's default
``anyio_backend`` runs each test on every installed backend)."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("anyio")
pytest.importorskip("trio")
pytest.importorskip("sniffio")

PLUGINS = ("anyio",)

_MODULE = """
    import anyio
    import sniffio
    import pytest

    pytestmark = pytest.mark.anyio


    @pytest.mark.parametrize("n", range(2))
    async def test_sleep(resource, anyio_backend, n):
        assert sniffio.current_async_library() == anyio_backend == resource["backend"]
        await anyio.sleep(0.03)


    async def test_task_group(anyio_backend):
        results = []

        async def work(i):
            await anyio.sleep(0.01 * i)
            results.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(work, i)
        assert sorted(results) == [0, 1, 2]
"""

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "conftest.py": """
        import anyio
        import pytest


        @pytest.fixture
        async def resource(anyio_backend):
            await anyio.sleep(0.01)
            yield {"backend": anyio_backend}
            await anyio.sleep(0.01)
    """,
    "test_a.py": _MODULE,
    "test_b.py": _MODULE,
    "test_c.py": _MODULE,
}


@over_modes
def test_anyio(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, "-ra")
    assert_counts(got, "18 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    backends = sorted("trio" if "[trio" in key else "asyncio" if "[asyncio" in key else key for key in got.junit)
    assert backends == ["asyncio"] * 9 + ["trio"] * 9, backends
