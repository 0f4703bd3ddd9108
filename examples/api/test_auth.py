import pytest

from conftest import Client


@pytest.mark.smoke
def test_login_gives_a_token(login):
    assert len(login) == 16


def test_wrong_password_is_refused(base_url):
    status, body = Client(base_url).call("POST", "/login", {"user": "alice", "password": "nope"})
    assert status == 401 and body == {"error": "bad credentials"}


@pytest.mark.parametrize("path", ["/items", "/items/1", "/orders"])
def test_endpoints_need_a_token(base_url, path):
    status, _ = Client(base_url).call("GET", path)
    assert status == 401
