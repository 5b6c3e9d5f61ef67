"""Which request and response headers cross the proxy, and how credentials are handled.

Pure functions over ASGI-style header lists (``list[tuple[bytes, bytes]]``, names
lower-cased by the server), so every rule here is unit-testable without a socket.

Why each rule exists:

* Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message:
  forwarding ``Connection``, ``Keep-Alive``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade`` or ``Proxy-*`` (or any header *named* in
  ``Connection``) lets a client steer the upstream connection or smuggle requests.
* ``Host`` and ``Content-Length`` are recomputed by the HTTP client from the
  configured upstream and the body actually sent; the caller's values never travel.
* A header value with CR, LF or NUL is an injection attempt (RFC 9110 §5.5 forbids
  them). The server's parser normally refuses them first; dropping them here again
  keeps the guarantee even behind a laxer server.
* ``caproute-*`` names belong to caproute: ``caproute-bypass`` / ``caproute-route``
  are requests to the proxy itself (see `upstream_request`), consumed here whether enabled or
  not, and any other ``caproute-`` header (a response header a caller echoes back, a
  misspelt control) is caproute's too. None of them travels upstream.
* Credentials: in pass-through mode the caller's ``x-api-key`` / ``Authorization``
  travel unchanged. In own-key mode the caller proves itself with a local token
  (checked in constant time) and its credentials are stripped, so a token can never
  reach the upstream and the upstream key never reaches a caller.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]
"""ASGI header list: lower-case names, raw values."""

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Recomputed for the outgoing request by the HTTP client (see module docstring).
_RECOMPUTED_REQUEST_HEADERS: frozenset[bytes] = frozenset({b"host", b"content-length"})

CREDENTIAL_HEADERS: frozenset[bytes] = frozenset({b"x-api-key", b"authorization"})

BYPASS_HEADER = b"caproute-bypass"
ROUTE_HEADER = b"caproute-route"
CONTROL_HEADERS: frozenset[bytes] = frozenset({BYPASS_HEADER, ROUTE_HEADER})
"""Per-request controls for the proxy itself: never forwarded, honoured only if enabled."""

_FORBIDDEN_VALUE_BYTES = re.compile(rb"[\r\n\x00]")

CAPROUTE_PREFIX = b"caproute-"
"""Every header named so is caproute's own: never forwarded upstream."""
_REQUEST_DROP_PREFIXES = (b"proxy-", CAPROUTE_PREFIX)
_RESPONSE_DROP_PREFIXES = (b"proxy-",)
"""Responses keep their ``caproute-*`` headers: they are the routing decision, for the caller."""

# The drop sets are fixed, so they are built once here rather than per request (this
# runs twice for every proxied request: once each way).
_REQUEST_DROP: frozenset[bytes] = HOP_BY_HOP | _RECOMPUTED_REQUEST_HEADERS | CONTROL_HEADERS
_REQUEST_DROP_OWN_KEY: frozenset[bytes] = _REQUEST_DROP | CREDENTIAL_HEADERS


def _named_in_connection(value: bytes) -> set[bytes]:
    """Header names listed in one ``Connection`` value (``Connection: close, x-secret``)."""
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def _end_to_end(
    headers: Iterable[tuple[bytes, bytes]],
    drop: frozenset[bytes],
    prefixes: tuple[bytes, ...] = _REQUEST_DROP_PREFIXES,
    controls: list[tuple[bytes, bytes]] | None = None,
) -> Headers:
    """One pass over `headers`; a second, rare one only when ``Connection`` names headers.

    ``Connection`` may come after the headers it names, so what it names is collected on
    the way and filtered out at the end (it is itself hop-by-hop, so never kept). The
    dropped `CONTROL_HEADERS` are appended to `controls`, when given.
    """
    kept: Headers = []
    named: set[bytes] | None = None
    unsafe = _FORBIDDEN_VALUE_BYTES.search
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in drop or name.startswith(prefixes):
            if name == b"connection":
                named = (named or set()) | _named_in_connection(value)
            elif controls is not None and name in CONTROL_HEADERS:
                controls.append((name, value))
            continue
        if unsafe(value) is None:
            kept.append((name, value))
    if named:
        kept = [(name, value) for name, value in kept if name not in named]
    return kept


def upstream_request(headers: Headers, *, api_key: str | None) -> tuple[Headers, bool, str | None]:
    """The headers to send upstream for a caller's request, and the caller's controls.

    Args:
        headers: The caller's headers as the ASGI server delivered them.
        api_key: The proxy's own key (own-key mode) or `None` (pass-through mode,
            the caller's credentials are forwarded as they are).

    Returns:
        End-to-end headers only, without ``Host`` / ``Content-Length``; in own-key
        mode the caller's credentials are replaced by ``x-api-key: <api_key>``. Then
        the per-request controls the caller sent: ``caproute-bypass`` is 1 (or true,
        yes) and the ``caproute-route`` (`None` without one), read in the same pass.
    """
    controls: list[tuple[bytes, bytes]] = []
    if api_key is None:
        kept = _end_to_end(headers, _REQUEST_DROP, controls=controls)
    else:
        kept = _end_to_end(headers, _REQUEST_DROP_OWN_KEY, controls=controls)
        kept.append((b"x-api-key", api_key.encode("latin-1")))
    bypass = False
    route: str | None = None
    for name, value in controls:
        if name == BYPASS_HEADER:
            bypass = value.strip().lower() in (b"1", b"true", b"yes")
        else:
            route = value.strip().decode("latin-1") or None
    return kept, bypass, route


def downstream_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The upstream response headers a caller gets (hop-by-hop ones removed)."""
    return _end_to_end(headers, HOP_BY_HOP, _RESPONSE_DROP_PREFIXES)


def presented_token(headers: Headers) -> bytes | None:
    """The credential a caller presented: ``x-api-key``, else an ``Authorization: Bearer``.

    SDKs send whichever is configured (``ANTHROPIC_API_KEY`` becomes ``x-api-key``,
    ``ANTHROPIC_AUTH_TOKEN`` a bearer token), so a local token is accepted in either.
    """
    bearer: bytes | None = None
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization":
            scheme, _, credential = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credential.strip():
                bearer = credential.strip()
    return bearer


def token_matches(presented: bytes | None, expected: bytes) -> bool:
    """Constant-time comparison of a presented local token with the configured one."""
    if presented is None:
        return False
    return hmac.compare_digest(presented, expected)
