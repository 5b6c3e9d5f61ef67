"""The parts of uvicorn caproute's limited protocols depend on, checked loudly.

uvicorn has no public hook for what `caproute._proxy._protocol_limits` adds (a cap on
the request head's size and header count, a header-read timeout, an idle timer armed
on new connections, a connection cap, all answered API-shaped). `LimitedHttpTools`
wraps uvicorn's httptools protocol (its constructor and asyncio.Protocol methods
only); `LimitedH11` subclasses uvicorn's h11 protocol, since a second h11 parse per
request would cost 14 % of a loopback round trip (see ARCH-NOTES / docs/architecture.md,
"Other libraries' internals"). Each test here names what changed when a uvicorn
upgrade breaks an assumption, instead of a limit test failing somewhere far away.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect

import pytest

uvicorn = pytest.importorskip("uvicorn")

from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from caproute._proxy import ProxyConfig  # noqa: E402
from caproute._proxy._server import protocol_factory, protocol_limits  # noqa: E402

OVERRIDDEN = {
    "h11": ("connection_made", "connection_lost", "data_received", "send_400_response"),
    "httptools": (
        "connection_made",
        "connection_lost",
        "data_received",
        "eof_received",
        "pause_writing",
        "resume_writing",
    ),
}
"""The methods caproute's classes override (h11) or call (httptools), per parser."""

USED = ("app", "config", "connections", "logger", "loop", "timeout_keep_alive")
"""The instance attributes the limits read (besides the parser's, below)."""

REPEATED = {("h11", "send_400_response"): "56937b748fc59d92"}
"""Methods caproute's h11 class re-implements rather than extends (no `super()` call),
with the digest of the uvicorn source it was written against (uvicorn 0.55)."""


def _base(http: str) -> type:
    if http == "httptools":
        pytest.importorskip("httptools")
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    return H11Protocol


def _protocol(http: str) -> asyncio.Protocol:
    """caproute's limited protocol for `http`, made as uvicorn's server makes it."""
    factory = protocol_factory(http, protocol_limits(ProxyConfig()))
    config = uvicorn.Config(lambda *args: None, http=factory, log_config=None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol: asyncio.Protocol = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}, _loop=loop
        )
    finally:
        loop.close()
    return protocol


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_uvicorn_still_has_every_method_caproute_overrides(http: str) -> None:
    base = _base(http)
    missing = [name for name in OVERRIDDEN[http] if not callable(getattr(base, name, None))]
    assert not missing, f"uvicorn's {base.__name__} no longer has {missing}: review _protocol_*.py"
    assert callable(getattr(base, "timeout_keep_alive_handler", None)), (
        f"uvicorn's {base.__name__}.timeout_keep_alive_handler is gone: the idle timer "
        "caproute arms on new connections calls it"
    )


def test_uvicorn_h11_protocol_still_holds_the_attributes_the_limits_read() -> None:
    protocol = _protocol("h11")
    missing = [name for name in (*USED, "conn") if not hasattr(protocol, name)]
    assert not missing, f"uvicorn's h11 protocol no longer sets {missing}"
    assert getattr(protocol, "timeout_keep_alive_task", "gone") is None, (
        "uvicorn's keep-alive timer attribute changed: the limits arm and cancel it"
    )
    assert type(protocol).__name__ == "LimitedH11"


def test_uvicorn_httptools_protocol_is_still_made_as_the_wrapper_makes_it() -> None:
    base = _base("httptools")
    parameters = set(inspect.signature(base).parameters)
    assert {"config", "server_state", "app_state", "_loop"} <= parameters, (
        f"uvicorn's HttpToolsProtocol takes {sorted(parameters)} now: LimitedHttpTools "
        "makes it with config, server_state, app_state and _loop"
    )
    protocol = _protocol("httptools")
    assert type(protocol).__name__ == "LimitedHttpTools"
    assert isinstance(protocol._inner, base)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("http", "method"), sorted(REPEATED))
def test_methods_caproute_repeats_are_unchanged_in_uvicorn(http: str, method: str) -> None:
    source = inspect.getsource(getattr(_base(http), method))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == REPEATED[http, method], (
        f"uvicorn changed {_base(http).__name__}.{method}, which caproute's limited "
        f"protocol re-implements: compare it with _protocol_{http}.py, then update the digest"
    )
