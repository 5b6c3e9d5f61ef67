"""Helpers for the scenario suite (the fixtures in ``conftest.py`` build these)."""

from __future__ import annotations

import anthropic

import caproute
from caproute import Decision, LiveRouter
from caproute._proxy import ProxyConfig
from caproute._registry.fetch import RegistryFetcher
from caproute.testing import FakeAnthropic, RecordedRequest
from running_proxy import RunningProxy

KEY_A = "sk-ant-scenario-key-a"
KEY_B = "sk-ant-scenario-key-b"
"""Two credentials (two organizations, as far as the fake's standing refusals go)."""

MESSAGES = "/v1/messages"


def credential_of(request: RecordedRequest) -> str | None:
    """The key a recorded request carried (SDK 2.x sends it as a bearer token)."""
    key = request.headers.get("x-api-key")
    if key is not None:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


class Upstream:
    """The requests that reached the fake API, step by step."""

    def __init__(self, fake: FakeAnthropic) -> None:
        self._fake = fake
        self._seen = len(fake.requests)

    def since(self, path: str = MESSAGES) -> list[RecordedRequest]:
        """The requests to `path` since the last call (the Models API reads excluded)."""
        requests = self._fake.requests
        new, self._seen = requests[self._seen :], len(requests)
        return [r for r in new if r.path == path]


class Clients:
    """SDK 2.x clients through one path, one per key, sharing that path's state."""

    def __init__(self, fake: FakeAnthropic, path: str) -> None:
        self.fake = fake
        self.path = path
        self.decisions: list[Decision] = []
        self._made: dict[tuple[str, str | None], anthropic.Anthropic] = {}
        self.router: LiveRouter | None = None
        self.proxy: RunningProxy | None = None
        if path == "wrap":
            fetcher = RegistryFetcher(api_key=KEY_A, base_url=fake.url, cache_file=False)
            fetcher.refresh()
            self.router = LiveRouter(fetcher, on_decision=self.decisions.append)
        else:
            config = ProxyConfig(upstream=fake.url, body_timeout=5.0)
            self.proxy = RunningProxy(config).start()

    def __call__(self, key: str = KEY_A, *, version: str | None = None) -> anthropic.Anthropic:
        """The client for `key` (one per key and `version`: an ``anthropic-version`` to
        send instead of the SDK's, e.g. ``2023-06-01`` for sampling parameters)."""
        client = self._made.get((key, version))
        if client is None:
            base_url = self.proxy.url if self.proxy is not None else self.fake.url
            headers = {"anthropic-version": version} if version is not None else None
            client = anthropic.Anthropic(
                base_url=base_url, api_key=key, max_retries=0, default_headers=headers
            )
            if self.router is not None:
                client = caproute.wrap(client, router=self.router)
            self._made[(key, version)] = client
        return client

    def close(self) -> None:
        for client in self._made.values():
            client.close()
        if self.proxy is not None:
            self.proxy.stop()
