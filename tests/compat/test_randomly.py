"""pytest-randomly with --randomly-seed=1234: the same shuffled order and the same random values per test."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_randomly")

PLUGINS = ("pytest-randomly",)

_MODULE = """
    import random
    import time
    import pytest


    @pytest.mark.parametrize("n", range(3))
    def test_reproducible_data(expected_first_draw, n):
        time.sleep(0.03)  # fetch something first
        assert random.random() == expected_first_draw


    def test_sample():
        data = list(range(100))
        random.shuffle(data)
        time.sleep(0.03)
        assert sorted(data) == list(range(100))
"""

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "conftest.py": '''
        import random
        import zlib
        import pytest


        @pytest.fixture
        def expected_first_draw(request):
            """What random.random() returns first in the test body under pytest-randomly:
            it reseeds with seed + crc32(nodeid) just before the call phase."""
            seed = request.config.getoption("randomly_seed") + zlib.crc32(request.node.nodeid.encode())
            return random.Random(seed).random()


        order_file = "order.log"


        @pytest.fixture(autouse=True)
        def record_order(request):
            with open(order_file, "a") as f:
                f.write(request.node.nodeid + "\\n")
    ''',
    "test_a.py": _MODULE,
    "test_b.py": _MODULE,
    "test_c.py": _MODULE,
}

ARGS = ("--randomly-seed=1234", "-ra")


def order_per_module(run) -> dict[str, list[str]]:
    """The set-up order of each module's tests (order.log)."""
    per: dict[str, list[str]] = {}
    for nodeid in run.file("order.log").read_text().split():
        per.setdefault(nodeid.split("::")[0], []).append(nodeid)
    return per


@over_modes
def test_randomly(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, *ARGS)
    assert_counts(got, "12 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    assert "Using --randomly-seed=1234" in got.stdout, f"[{mode}] no 'Using --randomly-seed=1234' header\n{got.tail()}"
    # Seed 1234 shuffles test_b first, its tests as [2], [0], [1], test_sample.
    assert serial.file("order.log").read_text().split()[:4] == [
        "test_b.py::test_reproducible_data[2]", "test_b.py::test_reproducible_data[0]",
        "test_b.py::test_reproducible_data[1]", "test_b.py::test_sample"]
    assert order_per_module(got) == order_per_module(serial), (
        f"[{mode}] tests of a module ran in another order than serial's shuffle")
