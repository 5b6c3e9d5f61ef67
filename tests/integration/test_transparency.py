"""A wrapped client behaves like the client it wraps (issue: the SDK's own suite, wrapped).

Each test here is a difference the anthropic SDK's test suite found between a client and
``caproute.wrap(client)`` (``make test-sdk-suite``), checked on its own against the fake
with the real SDK, on both paths (``via="middleware"`` / ``"transport"``) and with the
default registry source (the client's own endpoint) as well as a fixed one.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from pathlib import Path
from typing import Any

import anthropic
import pytest
from sdk_helpers import BIG, HTTP_FLAVOUR, MIDDLEWARE_SEES_CLIENT_HEADERS, PATHS, SMALL

import caproute
from caproute import Registry
from caproute.testing import FakeAnthropic

VIAS = ("middleware", "transport")
HELLO: dict[str, Any] = {"max_tokens": 100, "messages": [{"role": "user", "content": "Hello"}]}
http = importlib.import_module(HTTP_FLAVOUR)


def wrapped(client: Any, via: str, registry: Registry | None) -> Any:
    """`wrap` as the caller may call it: with or without a registry of its own."""
    if registry is None:
        return caproute.wrap(client, via=via)  # type: ignore[arg-type]
    return caproute.wrap(client, via=via, registry=registry)  # type: ignore[arg-type]


@pytest.fixture(params=["own-registry", "default-registry"])
def registry_or_none(request: pytest.FixtureRequest, registry: Registry) -> Registry | None:
    return registry if request.param == "own-registry" else None


class NotInTheAnswer(anthropic.BaseModel):
    """A response type the fake's answer does not satisfy (a required field it lacks)."""

    field_the_api_never_sends: int


@pytest.mark.parametrize("via", VIAS)
def test_strict_response_validation_is_kept(
    fake: FakeAnthropic, registry_or_none: Registry | None, via: str
) -> None:
    bare = fake.client(_strict_response_validation=True)
    with pytest.raises(anthropic.APIResponseValidationError):
        bare.get("/v1/models", cast_to=NotInTheAnswer)

    with wrapped(bare, via, registry_or_none) as client:
        assert client._strict_response_validation is True
        with pytest.raises(anthropic.APIResponseValidationError):
            client.get("/v1/models", cast_to=NotInTheAnswer)


class CountingClient(http.Client):  # type: ignore[misc,name-defined]
    """A caller's HTTP client with its own `send` (auditing, signing, metrics...)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sent: list[str] = []

    def send(self, request: Any, **options: Any) -> Any:
        self.sent.append(f"{request.method} {request.url.path}")
        return super().send(request, **options)


class AsyncCountingClient(http.AsyncClient):  # type: ignore[misc,name-defined]
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sent: list[str] = []

    async def send(self, request: Any, **options: Any) -> Any:
        self.sent.append(f"{request.method} {request.url.path}")
        return await super().send(request, **options)


@pytest.mark.parametrize("via", VIAS)
def test_a_callers_http_client_subclass_still_sends(
    fake: FakeAnthropic, registry_or_none: Registry | None, via: str
) -> None:
    own = CountingClient()
    with wrapped(fake.client(http_client=own), via, registry_or_none) as client:
        assert isinstance(client._client, CountingClient)
        client.messages.create(
            model=SMALL, max_tokens=20_000, messages=[{"role": "user", "content": "Hi"}]
        )
        sent = client._client.sent

    assert "POST /v1/messages" in sent
    assert own.sent == sent  # one record: the copy keeps the caller's state, not a new one


@pytest.mark.parametrize("via", VIAS)
def test_an_async_http_client_subclass_still_sends(
    fake: FakeAnthropic, registry_or_none: Registry | None, via: str
) -> None:
    async def run() -> list[str]:
        bare = fake.async_client(http_client=AsyncCountingClient())
        async with wrapped(bare, via, registry_or_none) as client:
            await client.messages.create(
                model=SMALL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
            )
            sent: list[str] = client._client.sent
            return sent

    assert "POST /v1/messages" in asyncio.run(run())


def test_dropping_a_wrapped_client_leaves_the_original_working(
    fake: FakeAnthropic, registry: Registry
) -> None:
    """The routed copy shares the original's connection pool: collecting it closes nothing
    (as dropping a ``with_options`` copy closes nothing)."""
    import gc

    original = fake.client()
    routed = caproute.wrap(original, registry=registry)
    routed.messages.create(model=SMALL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    del routed
    gc.collect()

    assert not original._client.is_closed
    original.messages.create(
        model=SMALL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
    )


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("is_async", [False, True])
def test_copy_and_with_options_keep_their_signature_and_the_instance_its_attributes(
    fake: FakeAnthropic, registry: Registry, via: str, is_async: bool
) -> None:
    bare = fake.async_client() if is_async else fake.client()
    client = caproute.wrap(bare, registry=registry, via=via)  # type: ignore[call-overload]

    for name in ("copy", "with_options", "with_middleware"):
        assert inspect.signature(getattr(client, name)) == inspect.signature(getattr(bare, name))
    assert vars(client).keys() == vars(bare).keys()
    assert vars(client.copy()).keys() == vars(client).keys()
    assert isinstance(client, type(bare))
    asyncio.run(client.close()) if is_async else client.close()
    asyncio.run(bare.close()) if is_async else bare.close()


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("is_async", [False, True])
def test_wrap_runs_no_platform_detection(
    fake: FakeAnthropic,
    registry_or_none: Registry | None,
    monkeypatch: pytest.MonkeyPatch,
    via: str,
    is_async: bool,
) -> None:
    """``client.default_headers`` runs the SDK's platform detection (blocking, on the event
    loop for an async client); the SDK defers it to the first request: so does `wrap`."""
    from anthropic import _base_client

    detected: list[object] = []
    detect = _base_client.platform_headers

    def spy(*args: Any, **kwargs: Any) -> Any:
        detected.append(args)
        return detect(*args, **kwargs)

    monkeypatch.setattr(_base_client, "platform_headers", spy)
    bare = fake.async_client() if is_async else fake.client()
    client = wrapped(bare, via, registry_or_none)

    assert detected == []
    asyncio.run(client.close()) if is_async else client.close()


# -- what the library paths never forward, and what they raise -------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_caller_set_caproute_headers_never_go_upstream(
    fake: FakeAnthropic, routed_client: Any, path: str
) -> None:
    # ``caproute-*`` names are caproute's own (its response headers, the proxy's
    # controls): like the proxy, the library paths drop them, routed or not.
    own = {"caproute-route": "cheap", "Caproute-Bypass": "1"}
    defaults = {"caproute-outcome": "forged"}
    if "middleware" in path and not MIDDLEWARE_SEES_CLIENT_HEADERS:
        defaults = {}  # a middleware before anthropic 2.17 never sees the client's defaults
    with routed_client(path, default_headers=defaults) as client:
        client.messages.create(model=SMALL, **HELLO, extra_headers=own)
        client.models.list(extra_headers=own)
        client.messages.create(model=SMALL, **HELLO)
    sent = fake.requests
    assert [r.path for r in sent] == ["/v1/messages", "/v1/models", "/v1/messages"]
    for request in sent:
        assert not [name for name in request.headers if name.startswith("caproute-")]
        assert request.headers["anthropic-version"]  # the rest still travels


URL_DOCUMENT = {"type": "document", "source": {"type": "url", "url": "https://example.test/a.pdf"}}


@pytest.mark.parametrize("path", PATHS)
def test_a_local_organization_refusal_raises_the_class_the_sdk_raises(
    fake: FakeAnthropic, routed_client: Any, bare_client: Any, path: str
) -> None:
    if "middleware" in path and not MIDDLEWARE_SEES_CLIENT_HEADERS:
        pytest.skip(
            "before anthropic 2.17 a middleware never sees the client's credential, so an "
            "organization refusal can't be remembered for it: each such call gets the "
            "API's own answer, as with the bare SDK"
        )
    fake.refusals.disable_url_fetch(fake.api_key)
    request: dict[str, Any] = {
        "model": BIG,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [URL_DOCUMENT, {"type": "text", "text": "?"}]}],
    }
    with bare_client() as bare, pytest.raises(anthropic.APIStatusError) as upstream:
        bare.messages.create(**request)
    with routed_client(path) as client:
        with pytest.raises(anthropic.APIStatusError) as first:
            client.messages.create(**request)  # the API's refusal, remembered for the key
        sent = fake.count("/v1/messages")
        with pytest.raises(anthropic.APIStatusError) as local:
            client.messages.create(**request)  # caproute's own answer, nothing sent
    assert fake.count("/v1/messages") == sent
    assert type(first.value) is type(upstream.value)
    assert type(local.value) is type(upstream.value)
    assert local.value.status_code == 400
    assert local.value.body["error"]["details"] == {"error_code": "organization_url_fetch_disabled"}


# -- crossings: each module boundary once in, once out ------------------------------------------


def _request_path() -> Any:
    """scripts/request_path.py, the tracer docs/architecture.md prints the path with."""
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "request_path.py"
    spec = importlib.util.spec_from_file_location("request_path", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KNOWN_REPEATS = {}


@pytest.mark.parametrize("via", VIAS)
def test_a_warm_request_crosses_each_module_boundary_once(via: str) -> None:
    tracer = _request_path()
    path = tracer.warm_request_path(via)
    shell = "caproute._http.middleware" if via == "middleware" else "caproute._http.transports"
    entered = [callee for caller, callee, _ in path if caller.startswith("<")]
    assert entered == [shell]  # the SDK (or its HTTP client) calls caproute once
    counts = tracer.boundary_counts(path)
    # The adapter: the shell calls it once, it calls the shell once (to send).
    assert counts[(shell, "caproute._runtime.drive")] == 1
    assert counts[("caproute._runtime.drive", shell)] == 1
    repeated = {pair: n for pair, n in counts.items() if n > 1}
    assert repeated == KNOWN_REPEATS, counts  # a repeat fixed comes off the list too
