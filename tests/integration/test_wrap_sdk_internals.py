"""The private SDK and HTTP-library names `caproute.wrap` still relies on, checked loudly.

`wrap` uses public names wherever the SDK has them (``with_options(http_client=...)``,
``with_middleware``, ``api_key`` / ``auth_token`` / ``base_url``, the HTTP client's
``headers`` / ``cookies`` / ``event_hooks`` setters, ``anthropic.DefaultHttpxClient``).
For what has no public way (listed with its reason in src/caproute/_wrap/client.py's
docstring), each test here fails, naming the name, as soon as an SDK or httpx2 release
moves it, instead of `wrap` silently routing nothing or losing a setting.
"""

from __future__ import annotations

import importlib
from typing import Any

import anthropic
import pytest
from sdk_helpers import API_KEY, HTTP_FLAVOUR, SDK_GENERATION

import caproute
from caproute import Registry

http = importlib.import_module(HTTP_FLAVOUR)


def _mock_client(**options: Any) -> anthropic.Anthropic:
    transport = http.MockTransport(lambda request: http.Response(200, json={}))
    return anthropic.Anthropic(
        api_key=API_KEY, http_client=http.Client(transport=transport), **options
    )


def test_the_sdk_client_keeps_its_http_client_in_client_underscore_client() -> None:
    """``client._client``: the HTTP client object the SDK sends with. No public accessor;
    `wrap` routes by wrapping that object's transport (its pool, proxies, TLS, a custom
    transport) and hands the SDK a copy through the public ``with_options(http_client=)``."""
    http_client = http.Client(transport=http.MockTransport(lambda r: http.Response(204)))
    client = anthropic.Anthropic(api_key=API_KEY, http_client=http_client)
    assert client._client is http_client, "anthropic moved its HTTP client off `_client`"
    assert client.with_options(http_client=http_client)._client is http_client


def test_the_http_client_keeps_its_transport_and_mounts_where_wrap_reads_them() -> None:
    """httpx2 (httpx for SDK 0.x) takes transports and mounts only in the constructor and
    has no public accessor: `wrap` reads ``_transport`` / ``_mounts`` and sets them on its
    copy of the HTTP client (the original keeps its own)."""
    transport = http.MockTransport(lambda request: http.Response(204))
    mounted = http.MockTransport(lambda request: http.Response(204))
    client = http.Client(transport=transport, mounts={"https://proxied.test": mounted})
    assert client._transport is transport, f"{HTTP_FLAVOUR} moved Client._transport"
    assert list(client._mounts.values()) == [mounted], f"{HTTP_FLAVOUR} moved Client._mounts"


def test_the_sdk_copy_still_drops_strict_response_validation() -> None:
    """``_strict_response_validation`` is a constructor-only argument the SDK's ``copy``
    does not pass on, so `wrap` (a ``with_options`` copy) sets it on the copy again. If
    this fails the SDK now carries it itself: `_keep_strict_validation` can go."""
    client = _mock_client(_strict_response_validation=True)
    assert client._strict_response_validation is True
    assert client.with_options(max_retries=0)._strict_response_validation is False
    routed = caproute.wrap(client, registry=Registry.from_models([]))
    assert routed._strict_response_validation is True


def test_the_clients_own_header_settings_hold_its_api_version() -> None:
    """On the middleware path of SDKs before 2.17, `wrap` reads the client's configured
    ``anthropic-version`` from ``_custom_headers`` (what ``default_headers=`` set): the
    public ``default_headers`` property runs the SDK's platform detection (blocking)."""
    client = _mock_client(default_headers={"anthropic-version": "2023-06-01"})
    assert client._custom_headers.get("anthropic-version") == "2023-06-01", (
        "anthropic moved the client's own header settings off `_custom_headers`"
    )


@pytest.mark.skipif(SDK_GENERATION < 2, reason="anthropic 2.x option")
def test_the_clients_open_telemetry_option_is_where_wrap_reads_it() -> None:
    """``open_telemetry=False`` (anthropic 2.x): the routing transport then annotates no
    span. The SDK keeps the resolved option in ``_open_telemetry`` and has no public
    accessor; `wrap` reads ``traces.enabled`` there."""
    off = _mock_client(open_telemetry=False)
    assert off._open_telemetry["traces"]["enabled"] is False
    on = _mock_client()
    assert on._open_telemetry["traces"]["enabled"] is not False


@pytest.mark.skipif(
    tuple(int(p) for p in anthropic.__version__.split(".")[:2]) < (2, 17),
    reason="middleware sees the client's default headers from anthropic 2.17 on",
)
def test_sdks_whose_middleware_sees_the_default_headers_are_told_apart() -> None:
    """From anthropic 2.17 the SDK merges the client's default headers into every
    ``APIRequest`` before middleware runs (``_add_client_headers``); `wrap` looks for
    that method to know whether its middleware must follow each copy's version (before
    2.17: a same-named subclass whose ``copy`` does). Gone, a 2.17+ client would get
    the subclass it doesn't need."""
    routed = caproute.wrap(_mock_client(), registry=Registry.from_models([]), via="middleware")
    assert callable(getattr(routed, "_add_client_headers", None))
    assert type(routed) is anthropic.Anthropic


@pytest.mark.skipif(SDK_GENERATION == 0, reason="anthropic 1.x/2.x (httpx2)")
def test_the_sdks_own_http_client_closes_itself_when_collected() -> None:
    """Why `wrap` gives its copy of the SDK's own HTTP client a same-named subclass that
    does not close on collection: the original (``SyncHttpxClientWrapper``) does, and
    the copy shares its pool. If this fails, `_copy_class` has nothing left to do."""
    from anthropic._base_client import SyncHttpxClientWrapper

    assert "__del__" in vars(SyncHttpxClientWrapper)
    client = anthropic.Anthropic(api_key=API_KEY)
    routed = caproute.wrap(client, registry=Registry.from_models([]))
    assert type(routed._client).__name__ == type(client._client).__name__
    assert type(routed._client).__del__ is not SyncHttpxClientWrapper.__del__
    routed._client.__del__()
    assert not routed._client.is_closed
    client.close()


def test_the_sdks_http_library_is_found_through_default_httpx_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The middleware builds its local answers with the SDK's HTTP library: found by
    asking whether the public ``anthropic.DefaultHttpxClient`` is an httpx2 (or httpx)
    ``Client``, not by its base classes' order (a mixin first named the wrong module)."""
    from caproute._http import middleware

    class Mixin:
        pass

    class DefaultHttpxClient(Mixin, http.Client):  # type: ignore[misc,name-defined]
        pass

    monkeypatch.setattr(anthropic, "DefaultHttpxClient", DefaultHttpxClient)
    assert middleware._sdk_http_module.__wrapped__() is http


def test_the_routed_http_client_has_the_originals_headers_cookies_and_hooks_as_copies() -> None:
    """Set through the HTTP client's public setters: equal to the original's, including
    a default header the caller removed, and independent of it afterwards."""
    hooks: list[Any] = [lambda request: None]
    http_client = http.Client(
        transport=http.MockTransport(lambda request: http.Response(204)),
        headers={"x-team": "a"},
        cookies={"session": "s"},
        event_hooks={"request": hooks},
    )
    del http_client.headers["user-agent"]
    client = anthropic.Anthropic(api_key=API_KEY, http_client=http_client)
    copy = caproute.wrap(client, registry=Registry.from_models([]))._client

    assert list(copy.headers.multi_items()) == list(http_client.headers.multi_items())
    assert dict(copy.cookies) == {"session": "s"}
    assert copy.event_hooks == {"request": hooks, "response": []}
    copy.headers["x-team"] = "b"
    copy.cookies["session"] = "t"
    copy.event_hooks["request"].append(print)
    assert http_client.headers["x-team"] == "a" and http_client.cookies["session"] == "s"
    assert http_client.event_hooks["request"] == hooks
