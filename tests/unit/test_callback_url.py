"""The TOMP webhook callbackUrl check: outside development a MaaS account may not point our server
at this machine or the town's own network (it would make our server POST to its internal
services: Redis, PostgreSQL, the metadata address). Development (tests, a laptop) allows them."""

from __future__ import annotations

import pytest

from transit import errors
from transit.feeds.tomp_webhooks import check_callback_url

INTERNAL = [
    "http://127.0.0.1:6379/", "https://127.0.0.1/tomp", "https://localhost/tomp", "http://localhost:8000",
    "https://[::1]/tomp", "https://10.0.0.5/tomp", "https://192.168.1.20/tomp", "https://172.16.0.1/tomp",
    "https://169.254.169.254/latest", "https://0.0.0.0/tomp", "https://[fe80::1]/tomp",
    "https://[::ffff:127.0.0.1]/tomp", "https://foo.localhost/tomp",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_are_refused_outside_development(url: str) -> None:
    with pytest.raises(errors.InvalidInput) as e:
        check_callback_url(url, development=False)
    assert e.value.message_ja and e.value.message_en


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/tomp", "http://localhost:9000", "https://10.0.0.5/x"])
def test_development_allows_this_machine(url: str) -> None:
    assert check_callback_url(url, development=True) == url.rstrip("/")


def test_a_public_https_url_is_taken_and_http_refused() -> None:
    assert check_callback_url("https://app.example/tomp/", development=False) == "https://app.example/tomp"
    assert check_callback_url("https://93.184.215.14/tomp", development=False) == "https://93.184.215.14/tomp"
    with pytest.raises(errors.InvalidInput):
        check_callback_url("http://app.example/tomp", development=False)
