"""pytest-order: order(n), order(-1), and before=/after= across modules are honoured."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("pytest_order")

PLUGINS = ("pytest-order",)

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "conftest.py": '''
        import json
        import os
        import time
        import pytest

        STATE = os.path.join(os.path.dirname(__file__), "state.json")


        class Store:
            """A stand-in for a shared test environment (a staging DB): a JSON file."""

            def read(self):
                try:
                    with open(STATE) as f:
                        return json.load(f)
                except FileNotFoundError:
                    return {}

            def write(self, **kv):
                data = self.read()
                data.update(kv)
                with open(STATE, "w") as f:
                    json.dump(data, f)


        @pytest.fixture
        def store():
            return Store()
    ''',
    "test_0_setup.py": """
        import time
        import pytest


        def test_unrelated():
            time.sleep(0.05)


        def test_create_tenant(store):
            time.sleep(0.1)
            store.write(tenant="acme")
    """,
    "test_1_accounts.py": """
        import time
        import pytest


        @pytest.mark.order(after="test_0_setup.py::test_create_tenant")
        def test_create_account(store):
            time.sleep(0.05)
            assert store.read().get("tenant") == "acme"
            store.write(account="alice")


        def test_account_independent():
            time.sleep(0.05)
    """,
    "test_2_billing.py": """
        import time
        import pytest


        @pytest.mark.order(before="test_3_cleanup.py::test_cleanup")
        def test_invoice(store):
            time.sleep(0.05)
            assert store.read().get("account") == "alice"
            store.write(invoiced=True)


        @pytest.mark.order(1)
        def test_runs_first(store):
            assert store.read() == {}, "test_runs_first must be the first test of the run"
    """,
    "test_3_cleanup.py": """
        import time
        import pytest


        @pytest.mark.order(-1)
        def test_cleanup(store):
            time.sleep(0.02)
            data = store.read()
            assert data == {"tenant": "acme", "account": "alice", "invoiced": True}
    """,
}

SERIAL_ORDER = [
    "test_2_billing.py::test_runs_first",
    "test_0_setup.py::test_unrelated",
    "test_0_setup.py::test_create_tenant",
    "test_1_accounts.py::test_create_account",
    "test_1_accounts.py::test_account_independent",
    "test_2_billing.py::test_invoice",
    "test_3_cleanup.py::test_cleanup",
]


@over_modes
def test_order(compat, mode: str) -> None:
    got, serial = compat.against_serial(FILES, mode, "-v", "-ra")
    assert_counts(got, "7 passed")
    assert got.ret == 0, f"[{mode}] exit code {got.ret}\n{got.tail()}"
    assert [line.split()[0] for line in serial.lines(r" PASSED")] == SERIAL_ORDER
    state = got.file("state.json")
    assert state.exists() and json.loads(state.read_text()) == {
        "tenant": "acme", "account": "alice", "invoiced": True}, f"[{mode}] state.json: {state.read_text() if state.exists() else None}"
