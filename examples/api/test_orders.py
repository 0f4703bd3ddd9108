"""An order's life, step by step: these tests must run in this order.

The module is one group (fleet's default --group-unit module), so fleet runs
its tests one after another, while other modules run beside it.
"""

import pytest

pytestmark = pytest.mark.group("order-lifecycle")

STATE = {}


def test_create_order(api):
    status, order = api.call("POST", "/orders", {"item": 3})
    assert status == 201 and order["state"] == "new"
    STATE["order"] = order["id"]


def test_read_order(api):
    status, order = api.call("GET", f"/orders/{STATE['order']}")
    assert status == 200 and order["item"] == 3


def test_order_is_listed(api):
    status, orders = api.call("GET", "/orders")
    assert STATE["order"] in [o["id"] for o in orders]


def test_delete_order(api):
    status, _ = api.call("DELETE", f"/orders/{STATE['order']}")
    assert status == 204


def test_order_is_gone(api):
    status, _ = api.call("GET", f"/orders/{STATE['order']}")
    assert status == 404
