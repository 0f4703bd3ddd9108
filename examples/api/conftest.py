import json
import urllib.error
import urllib.request

import pytest

from server import serve


class Client:
    """The smallest HTTP client a test needs: JSON in, (status, JSON) out."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="session")
def base_url():
    server = serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def login(base_url):
    """Log in once for the whole run; every test shares the token."""
    status, body = Client(base_url).call("POST", "/login", {"user": "alice", "password": "wonderland"})
    assert status == 200, body
    return body["token"]


@pytest.fixture
def api(base_url, login):
    return Client(base_url, login)
