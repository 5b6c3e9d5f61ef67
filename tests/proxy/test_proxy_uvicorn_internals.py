"""The parts of uvicorn caproute's limited protocols depend on, checked loudly.

uvicorn has no public hook for what `caproute._proxy._protocol_limits` adds (a cap on
the request head's size and header count with httptools, a header-read timeout, an
idle timer armed on new connections, a connection cap, all answered API-shaped), so
`LimitedH11` and `LimitedHttpTools` subclass uvicorn's protocol classes (see
ARCH-NOTES / docs/architecture.md, "Other libraries' internals"). Each test here names
what changed when a uvicorn upgrade breaks an assumption, instead of a limit test
failing somewhere far away.
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
        "send_400_response",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_message_complete",
    ),
}
"""The methods caproute's classes override, per parser."""

USED = ("app", "config", "connections", "logger", "loop", "timeout_keep_alive")
"""The instance attributes the limits read (besides the parser's, below)."""

REPEATED = {
    ("httptools", "data_received"): "010a7ae59a5d3b1a",
    ("httptools", "send_400_response"): "ae5a4a3782b646fd",
    ("h11", "send_400_response"): "56937b748fc59d92",
}
"""Methods caproute's classes re-implement rather than extend (no `super()` call), with
the digest of the uvicorn source they were written against (uvicorn 0.55)."""


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


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_uvicorn_protocols_still_hold_the_attributes_the_limits_read(http: str) -> None:
    _base(http)
    protocol = _protocol(http)
    parser = "parser" if http == "httptools" else "conn"
    missing = [name for name in (*USED, parser) if not hasattr(protocol, name)]
    assert not missing, f"uvicorn's {http} protocol no longer sets {missing}"
    assert getattr(protocol, "timeout_keep_alive_task", "gone") is None, (
        "uvicorn's keep-alive timer attribute changed: the limits arm and cancel it"
    )
    assert type(protocol).__name__ == ("LimitedHttpTools" if http == "httptools" else "LimitedH11")


@pytest.mark.parametrize(("http", "method"), sorted(REPEATED))
def test_methods_caproute_repeats_are_unchanged_in_uvicorn(http: str, method: str) -> None:
    source = inspect.getsource(getattr(_base(http), method))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == REPEATED[http, method], (
        f"uvicorn changed {_base(http).__name__}.{method}, which caproute's limited "
        f"protocol re-implements: compare it with _protocol_{http}.py, then update the digest"
    )
