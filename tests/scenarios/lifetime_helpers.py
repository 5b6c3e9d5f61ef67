"""Shared pieces of the fact-lifetime, look-up, list-omission and count_tokens scenarios.

Each scenario is a sequence of steps with API-side events between them (a refresh, a
catalogue change, a refusal) and asserts per step what reached the fake. Two paths run
every sequence:

* `Wrapped`: the real SDK (2.x) through `caproute.wrap(client, router=...)`, with a live
  `RegistryFetcher` the test refreshes itself (`refresh()`), so a step happens after a
  refresh exactly when the sequence says so;
* `Proxied`: the real proxy (`tests/running_proxy.py`) in pass-through mode (the caller
  brings its key, the proxy keeps one registry per caller), its registry TTL short, so
  `refresh()` lets the caller's registry go stale, makes one request that starts the
  background refresh, and waits until it has landed.

Refusal texts come from the fake's own validator (`caproute.testing`), which words them
as the API does (three wordings, `WORDINGS`); a scenario that needs the API to refuse
what the list claims queues that refusal as a fault (the list says one thing, the API
answers another: exactly the case the scenarios are about).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2

import caproute
from caproute import LiveRouter, Registry
from caproute._proxy import ProxyConfig
from caproute._proxy._callers import Credential
from caproute._registry.fetch import RegistryFetcher
from caproute.testing import FakeAnthropic
from caproute.testing._validation import WORDINGS, Wording, validate_params
from caproute.testing._wire import ApiError
from running_proxy import RunningProxy, wait_until

KEY = "sk-ant-scenario-key-0123"
HI = [{"role": "user", "content": "hi"}]
PROXY_TTL = 0.4
"""The proxy's registry TTL in these scenarios, seconds (a refresh is one TTL away)."""

__all__ = [
    "HI",
    "KEY",
    "WORDINGS",
    "Path_",
    "Proxied",
    "Wording",
    "Wrapped",
    "effort_max",
    "messages_sent",
    "refusal",
]


def refusal(
    body: dict[str, Any], model: dict[str, Any], *, wording: Wording, endpoint: Any = "messages"
) -> ApiError:
    """The API's answer to `body` sent to a model whose record is `model`.

    Raises:
        AssertionError: The model would take the body (the scenario is wrong).
    """
    try:
        validate_params(body, model, api_version="2023-06-01", endpoint=endpoint, wording=wording)
    except ApiError as error:
        return error
    raise AssertionError(f"{model['id']} would accept {body}")


def refuse_next(fake: FakeAnthropic, path: str, error: ApiError) -> None:
    """The next request to `path` gets `error` (status, type and wording as the API's)."""
    fake.faults.add(
        path,
        status=error.status,
        error_type=error.error_type,
        message=error.message,
        x_should_retry=False,
    )


def effort_max(model: str, max_tokens: int = 100) -> dict[str, Any]:
    """SDK keywords for a call to `model` asking for effort ``max``."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": HI,
        "extra_body": {"output_config": {"effort": "max"}},
    }


def messages_sent(fake: FakeAnthropic, mark: int = 0, path: str = "/v1/messages") -> list[Any]:
    """The bodies of the requests to `path` the fake received after request `mark`."""
    return [r.body for r in fake.requests[mark:] if r.path == path]


class Path_:
    """One way to the fake (`Wrapped` or `Proxied`): send, and refresh the registry."""

    name = ""

    def __init__(self, fake: FakeAnthropic) -> None:
        self.fake = fake

    def create(self, **request: Any) -> int:
        """``messages.create`` with `request`; the status the caller got."""
        return self._status(lambda c: c.messages.with_raw_response.create(**request))

    def count_tokens(self, **request: Any) -> int:
        """``messages.count_tokens`` with `request`; the status the caller got."""
        return self._status(lambda c: c.messages.with_raw_response.count_tokens(**request))

    def _status(self, call: Any) -> int:
        try:
            return int(call(self.client).status_code)
        except anthropic.APIStatusError as error:
            return error.status_code

    @property
    def client(self) -> anthropic.Anthropic:
        raise NotImplementedError

    def refresh(self) -> None:
        """Let the registry be fetched again, and wait until the new list is in use."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Wrapped(Path_):
    """The SDK through `caproute.wrap` over a live fetcher of the fake's lineup."""

    name = "wrap"

    def __init__(
        self, fake: FakeAnthropic, *, initial: Registry | None = None, via: str = "auto"
    ) -> None:
        super().__init__(fake)
        self.fetcher = RegistryFetcher(
            api_key=KEY,
            base_url=fake.url,
            cache_file=False,
            background=False,
            initial=initial if initial is not None else Registry.from_models([]),
        )
        self.fetcher.refresh()
        self.router = LiveRouter(self.fetcher)
        self.bare = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)
        self._client = caproute.wrap(self.bare, router=self.router, via=via)

    @property
    def client(self) -> anthropic.Anthropic:
        return self._client

    def refresh(self) -> None:
        before = self.fetcher.current()
        self.fetcher.refresh()
        assert self.fetcher.current() is not before

    def close(self) -> None:
        self._client.close()
        self.bare.close()
        self.fetcher.close()


class Proxied(Path_):
    """The SDK through the real proxy, pass-through mode (the caller's own key)."""

    name = "proxy"

    def __init__(self, fake: FakeAnthropic, **options: Any) -> None:
        super().__init__(fake)
        options.setdefault("registry_ttl", PROXY_TTL)
        options.setdefault("body_timeout", 5.0)
        self.proxy = RunningProxy(ProxyConfig(upstream=fake.url, **options)).start()
        self._client = anthropic.Anthropic(base_url=self.proxy.url, api_key=KEY, max_retries=0)

    @property
    def client(self) -> anthropic.Anthropic:
        return self._client

    def caller(self, key: str = KEY) -> Any:
        """The proxy's registry entry for the caller with `key`."""
        callers = self.proxy.app.callers
        assert callers is not None
        return callers.lookup(Credential(key, bearer=False))

    def refresh(self, key: str = KEY) -> None:
        entry = self.caller(key)
        wait_until(lambda: entry._flight is None)  # a refresh the flow asked for, say
        fetches = entry.fetches
        time.sleep(PROXY_TTL + 0.05)
        # Any request to a routed endpoint starts the stale caller's refresh in the
        # background; one without a model (nothing to route, nothing to look up), so
        # the steps' own requests stay apart.
        headers = {**self.fake.headers(), "x-api-key": key}
        with httpx2.Client(base_url=self.proxy.url, headers=headers) as http:
            http.post("/v1/messages/count_tokens", json={"messages": HI})
        wait_until(
            lambda: entry.fetches > fetches and entry._flight is None and entry.last_error is None
        )

    def close(self) -> None:
        self._client.close()
        self.proxy.stop()


def paths(fake: FakeAnthropic, which: str, **options: Any) -> Iterator[Path_]:
    """`Wrapped` (``wrap``: the SDK middleware; ``transport``: the routing transport) or
    `Proxied` (``proxy``) over `fake`, closed afterwards."""
    path: Path_
    if which == "proxy":
        path = Proxied(fake, **options)
    else:
        path = Wrapped(fake, via="auto" if which == "wrap" else which, **options)
    try:
        yield path
    finally:
        path.close()
