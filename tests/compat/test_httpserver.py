"""pytest-httpserver: each test has the server to itself (its handlers, its log)."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_httpserver")

PLUGINS = ("pytest-httpserver",)


def _module(name: str) -> str:
    return f"""
        import json
        import time
        from conftest import get


        def test_{name}_list(httpserver):
            httpserver.expect_request("/api/{name}").respond_with_json([{{"id": 1}}])
            time.sleep(0.05)  # the client under test does some work first
            status, body = get(httpserver.url_for("/api/{name}"))
            assert status == 200 and json.loads(body) == [{{"id": 1}}]
            assert len(httpserver.log) == 1


        def test_{name}_oneshot(httpserver):
            httpserver.expect_oneshot_request("/api/{name}/1").respond_with_data("one")
            time.sleep(0.05)
            assert get(httpserver.url_for("/api/{name}/1")) == (200, "one")
            httpserver.check_assertions()


        def test_{name}_no_unexpected_calls(httpserver):
            time.sleep(0.05)
            assert httpserver.log == []
    """


FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "conftest.py": """
        import json
        import time
        import urllib.request
        import urllib.error
        import pytest


        def get(url):
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
    """,
    "test_orders.py": _module("orders"),
    "test_stock.py": _module("stock"),
    "test_users.py": _module("users"),
}


@over_modes
def test_httpserver(compat, mode: str) -> None:
    # The server listens on a free port (PYTEST_HTTPSERVER_PORT unset: no fixed port).
    compat.monkeypatch.delenv("PYTEST_HTTPSERVER_PORT", raising=False)
    compat.monkeypatch.delenv("PYTEST_HTTPSERVER_HOST", raising=False)
    got, serial = compat.against_serial(FILES, mode, "-ra")
    assert_counts(got, "9 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
