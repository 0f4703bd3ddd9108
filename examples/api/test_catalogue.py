import pytest


@pytest.mark.parametrize("item_id", range(1, 11))
def test_prices_are_multiples_of_ten(api, item_id):
    status, item = api.call("GET", f"/items/{item_id}")
    assert status == 200 and item["price"] % 10 == 0


@pytest.mark.parametrize("item_id", range(11, 21))
def test_names_match_ids(api, item_id):
    status, item = api.call("GET", f"/items/{item_id}")
    assert item["name"].endswith(str(item_id))
