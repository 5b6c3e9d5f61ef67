"""A caller's credential in pass-through mode: read from a request, told apart by a
keyed digest, lent to the fetches its own request causes, never stored.

Callers are told apart by BLAKE2b in keyed mode (a MAC, like HMAC) of the credential
under a random 32-byte key (`hmac_key`; kept in the cache directory when there is
one). A request lends its credential for its own lifetime (`lend`); a per-caller
fetcher reads it through `LentCredentials`, which hold none themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from .._registry.fetch_state import Credentials
from ._headers import Headers

__all__ = [
    "Credential",
    "LentCredentials",
    "hmac_key",
    "lend",
    "lent",
    "presented",
    "presented_credential",
]


class Credential:
    """A caller's credential as presented on one request; its repr never shows it.

    Only ``x-api-key`` and ``Authorization: Bearer`` credentials can read the Models
    API on a caller's behalf (what SDKs send: 0.x ``x-api-key``, 2.x either).
    """

    __slots__ = ("_bearer", "_value")

    def __init__(self, value: str, *, bearer: bool) -> None:
        self._value = value
        self._bearer = bearer

    def digest(self, key: bytes) -> str:
        """The keyed hash of the credential under `key` (BLAKE2b in keyed mode, a MAC), hex.

        BLAKE2b's keyed mode is one C call (~1 µs, against ~5 µs for HMAC-SHA256 from
        Python), and this runs for every request. The header the credential came in is
        left out: one key is one caller whether an SDK sends it as ``x-api-key`` or as a
        bearer token (a fetch uses the header it came in).
        """
        value = self._value.encode("latin-1")
        return hashlib.blake2b(value, key=key, digest_size=32).hexdigest()

    def fetcher_credentials(self) -> tuple[str, str]:
        """``(api_key, auth_token)`` for a fetcher; the unused one is "", never `None`,
        so the fetcher can't fall back to ``ANTHROPIC_*`` variables."""
        if self._bearer:
            return "", self._value
        return self._value, ""

    def __repr__(self) -> str:
        return f"<credential {'bearer' if self._bearer else 'x-api-key'}>"


def presented_credential(headers: Headers) -> Credential | None:
    """The credential a request carries (``x-api-key`` first, else a bearer token)."""
    bearer: Credential | None = None
    for name, value in headers:
        if name == b"x-api-key":
            text = value.strip().decode("latin-1")
            return Credential(text, bearer=False) if text else None
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = Credential(token.strip().decode("latin-1"), bearer=True)
    return bearer


def presented(headers: Headers, key: bytes) -> tuple[Credential, str] | None:
    """`presented_credential` and its `digest` under `key`, in one call (per request)."""
    credential = presented_credential(headers)
    return None if credential is None else (credential, credential.digest(key))


class _Lease:
    """A credential lent for one block; emptied when the block ends."""

    __slots__ = ("credential",)

    def __init__(self, credential: Credential | None) -> None:
        self.credential = credential


_LENT: ContextVar[_Lease | None] = ContextVar("caproute_proxy_credential", default=None)


@contextlib.contextmanager
def lend(credential: Credential | None) -> Iterator[None]:
    """Make `credential` available to refreshes the routing flow asks for, for this block.

    The context variable holds a lease that is emptied on the way out, not the
    credential itself: event loops keep a copy of the context current when a
    connection was opened (for its callbacks), and a pooled upstream connection
    outlives the request that opened it.
    """
    lease = _Lease(credential)
    token = _LENT.set(lease)
    try:
        yield
    finally:
        lease.credential = None
        _LENT.reset(token)


def lent() -> Credential | None:
    """The credential lent to the current block (`lend`), if any."""
    lease = _LENT.get()
    return None if lease is None else lease.credential


def hmac_key(cache_dir: Path | None) -> bytes:
    """The key digests are made with: kept in `cache_dir` (0600) when there is one."""
    if cache_dir is None:
        return secrets.token_bytes(32)
    from .._registry.snapshot import cache_key

    return cache_key(cache_dir)


class LentCredentials(Credentials):
    """The credentials of a per-caller fetcher: none of its own, only the one the current
    request lent (`lend`) when its digest is the caller's."""

    __slots__ = ("_digest", "_key")

    def __init__(self, digest: str, key: bytes) -> None:
        super().__init__(None, None)
        self._digest, self._key = digest, key

    def _matching(self) -> Credential | None:
        credential = lent()
        if credential is None or credential.digest(self._key) != self._digest:
            return None
        return credential

    @property
    def present(self) -> bool:
        return self._matching() is not None

    def for_fetch(self) -> Credentials:
        """The lent credential, held by the fetch (or look-up) starting now until it ends."""
        credential = self._matching()
        return (
            Credentials(*credential.fetcher_credentials())
            if credential
            else Credentials(None, None)
        )
