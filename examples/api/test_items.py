import pytest


@pytest.mark.smoke
def test_list_items(api):
    status, items = api.call("GET", "/items")
    assert status == 200 and len(items) == 20


@pytest.mark.parametrize("item_id", range(1, 21))
def test_get_item(api, item_id):
    status, item = api.call("GET", f"/items/{item_id}")
    assert status == 200
    assert item == {"id": item_id, "name": f"item-{item_id}", "price": 10 * item_id}


def test_missing_item(api):
    status, _ = api.call("GET", "/items/999")
    assert status == 404
