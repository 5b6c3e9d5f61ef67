"""`LiveRouter`'s memory of organization refusals: per credential, by digest, with a TTL.

The flow yields `RememberAccount` with the digest the router's `View.digest` gave it;
the router keeps it in memory only (never in the learned facts or the cache file),
forgets it when the TTL ends, and a router made with another key (another process)
can't link its digests to these.
"""

from __future__ import annotations

import pytest

from caproute import LiveRouter, Registry
from caproute._core.flow import AccountRefusal, RememberAccount
from caproute.testing import make_model

REFUSAL = AccountRefusal("url_sources", "organization_url_fetch_disabled", "off for the org")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def router(clock: Clock, ttl: float = 60.0) -> LiveRouter:
    registry = Registry.from_models([make_model("claude-x")])
    return LiveRouter(registry, wall_clock=clock, clock=clock, learned_ttl_s=ttl)


def test_a_refusal_is_kept_by_digest_never_by_credential_nor_as_a_model_fact() -> None:
    live = router(Clock())
    digest = live.view().digest
    assert digest is not None
    account = digest("sk-ant-secret-key")
    assert "sk-ant-secret-key" not in account and digest("sk-ant-secret-key") == account
    assert digest("sk-ant-other-key") != account
    live.carry_out(RememberAccount(account, REFUSAL))
    assert live.view().accounts == {account: {"url_sources": REFUSAL}}
    assert live.learned == ()  # never a model fact (nor in a saved cache file)


def test_another_router_digests_the_same_credential_differently() -> None:
    one, two = router(Clock()), router(Clock())
    assert one.view().digest is not None and two.view().digest is not None
    assert one.view().digest("sk-ant-k") != two.view().digest("sk-ant-k")


def test_a_twin_router_shares_the_memory() -> None:
    live = router(Clock())
    twin = live.with_policy(None)
    digest = live.view().digest
    assert digest is not None and twin.view().digest is digest
    live.carry_out(RememberAccount(digest("sk-ant-k"), REFUSAL))
    assert twin.view().accounts == live.view().accounts != {}


def test_the_refusal_is_forgotten_when_its_ttl_ends() -> None:
    clock = Clock()
    live = router(clock, ttl=60.0)
    digest = live.view().digest
    assert digest is not None
    live.carry_out(RememberAccount(digest("sk-ant-k"), REFUSAL))
    clock.now += 59.0
    assert live.view().accounts != {}
    clock.now += 2.0
    assert live.view().accounts == {}


@pytest.mark.anyio
async def test_the_async_driver_remembers_too() -> None:
    live = router(Clock())
    digest = live.view().digest
    assert digest is not None
    await live.acarry_out(RememberAccount(digest("sk-ant-k"), REFUSAL))
    assert len((await live.aview()).accounts) == 1
