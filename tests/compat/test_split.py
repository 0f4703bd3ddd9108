"""pytest-split: the same group selected from stored durations, and durations stored for every test."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_split")

PLUGINS = ("pytest-split",)

_MODULE = """
    import time
    import pytest


    @pytest.mark.parametrize("ms", [20, 60, 100])
    def test_work(ms):
        time.sleep(ms / 1000)


    def test_cpu():
        sum(i * i for i in range(300_000))
"""

# Stored by a serial run of the suite.
DURATIONS = {
    f"test_{m}.py::{t}": d
    for m in "abcd"
    for t, d in (("test_cpu", 0.0165), ("test_work[100]", 0.1005), ("test_work[20]", 0.0205), ("test_work[60]", 0.0633))
}

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    ".test_durations": json.dumps(DURATIONS, indent=4),
    "test_a.py": _MODULE,
    "test_b.py": _MODULE,
    "test_c.py": _MODULE,
    "test_d.py": _MODULE,
}


@over_modes
def test_split_group(compat, mode: str) -> None:
    args = ("--splits", "2", "--group", "1", "-v", "-ra")
    got, serial = compat.against_serial(FILES, mode, *args)
    assert_counts(got, "8 passed, 8 deselected")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    banner = got.lines(r"^\[pytest-split\] Running group")
    assert banner == serial.lines(r"^\[pytest-split\] Running group"), f"[{mode}] {banner}"
    assert len(banner) == 1 and banner[0].startswith("[pytest-split] Running group 1/2 (estimated duration: 0.4"), banner


@over_modes
def test_split_store_durations(compat, mode: str) -> None:
    args = ("--store-durations", "--durations-path=durations.new.json", "-ra")
    got, serial = compat.against_serial(FILES, mode, *args)
    assert_counts(got, "16 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    assert got.lines(r"Stored test durations in") == ["[pytest-split] Stored test durations in durations.new.json"]
    stored = json.loads(got.file("durations.new.json").read_text())
    assert sorted(stored) == sorted(json.loads(serial.file("durations.new.json").read_text())) == sorted(DURATIONS)
    sleeps = {k: v for k, v in stored.items() if "test_work" in k}
    too_short = {k: v for k, v in sleeps.items() if v < int(k.split("[")[1].rstrip("]")) / 1000}
    assert not too_short, f"[{mode}] durations shorter than the tests' sleeps: {too_short}"
