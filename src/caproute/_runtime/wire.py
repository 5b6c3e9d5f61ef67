"""What a shell reads off a request before routing it: which endpoint, which betas.

Pure string work, shared by every shell (the SDK middleware, the httpx/httpx2
transports, the proxy). Kept apart from `caproute._runtime.drive` so that a shell
calls each module once per request: ``endpoint_for`` here to decide whether to route
at all, then ``drive`` there (docs/architecture.md, "crossings").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .._types import Endpoint

__all__ = ["CAPROUTE_PREFIX", "endpoint_for", "parse_betas"]

CAPROUTE_PREFIX: Final = "caproute-"
"""Header names that belong to caproute: set on responses, never forwarded upstream."""

_ROUTED_SUFFIXES: Final[tuple[tuple[str, Endpoint], ...]] = (
    ("/v1/messages", "messages"),
    ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1/messages/batches", "batch"),
)


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The routed endpoint a request goes to, or `None` for traffic to pass through.

    Only ``POST`` to ``…/v1/messages``, ``…/v1/messages/count_tokens`` and
    ``…/v1/messages/batches`` are routed; a base URL with a path prefix (a gateway) is
    fine. Batch retrieval, results, cancel, models, files… all pass through.

    The API serves these paths with trailing slashes too (``/v1/messages/``), so those
    are routed as well: otherwise a slash would sidestep routing. (Percent-encoded
    paths arrive decoded; spellings the API answers 404, such as ``/v1//messages`` or
    ``/V1/messages``, are not routed: routing them would gain nothing, and their 404
    would read as the model's.)
    """
    if method != "POST":
        return None
    for suffix, endpoint in _ROUTED_SUFFIXES:
        if path.endswith(suffix):
            return endpoint
    if path.endswith("/"):  # rare: checked only once the common spellings missed
        stripped = path.rstrip("/")
        for suffix, endpoint in _ROUTED_SUFFIXES:
            if stripped.endswith(suffix):
                return endpoint
    return None


def parse_betas(values: Sequence[str]) -> tuple[str, ...]:
    """Every ``anthropic-beta`` value, from repeated and/or comma-separated headers."""
    return tuple(b for v in values for b in (p.strip() for p in v.split(",")) if b)
