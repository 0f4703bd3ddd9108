"""pytest-html: each row of the report has the test's own result and extras."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, decode_extra, html_blob, over_modes

pytest.importorskip("pytest_html")

PLUGINS = ("pytest-html", "pytest-metadata")

_MODULE = """
    import logging
    import time
    import pytest
    import pytest_html


    @pytest.mark.parametrize("n", range(2))
    def test_with_extras(request, extras, n):
        extras.append(pytest_html.extras.text(f"attachment of {request.node.nodeid}", name="note"))
        time.sleep(0.05)
        extras.append(pytest_html.extras.url(f"http://example.invalid/{request.node.name}"))
        logging.getLogger(__name__).warning("log of %s", request.node.nodeid)


    def test_fails():
        time.sleep(0.02)
        assert "a" == "b"
"""

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "test_a.py": _MODULE,
    "test_b.py": _MODULE,
    "test_c.py": _MODULE,
}

ARGS = ("--html=report.html", "--self-contained-html", "-ra")


def rows(run) -> dict[str, list[tuple]]:
    """Per test: its rows in the report, each (result, its extras)."""
    tests = html_blob(run.file("report.html"))["tests"]
    return {nodeid: [(row.get("result"), [decode_extra(e) for e in row.get("extras", [])]) for row in found]
            for nodeid, found in tests.items()}


@over_modes
def test_html(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, *ARGS)
    assert_counts(got, "3 failed, 6 passed")
    assert got.ret == 1, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    assert got.file("report.html").exists(), f"[{mode}] no report.html\n{got.tail()}"
    assert got.lines(r"Generated html report: "), f"[{mode}] no 'Generated html report' line\n{got.tail()}"
    mine, theirs = rows(got), rows(serial)
    # Serial: 9 rows, each with_extras row has its 2 extras, both naming it.
    assert sum(len(r) for r in theirs.values()) == 9
    for nodeid, found in theirs.items():
        if "with_extras" in nodeid:
            ((result, extras),) = found
            assert result == "Passed" and len(extras) == 2
            assert extras[0] == ("note", "text", f"attachment of {nodeid}")
            assert extras[1][1:] == ("url", f"http://example.invalid/{nodeid.split('::')[1]}")
    assert sorted(mine) == sorted(theirs), f"[{mode}] tests in the report: {sorted(mine)}"
    wrong = [f"{nodeid}: {mine[nodeid]} (serial {theirs[nodeid]})" for nodeid in theirs if mine[nodeid] != theirs[nodeid]]
    assert not wrong, f"[{mode}] {len(wrong)} row(s) of report.html differ from serial: " + "; ".join(wrong[:3])
