"""An SDK client routed by caproute along one of the ways in, for the integration and
reliability suites (each lists the paths it runs: `sdk_helpers.PATHS`,
`reliability_helpers.LIBRARY_PATHS`)."""

from __future__ import annotations

from typing import Any

import anthropic

import caproute

HTTP_FLAVOUR = "httpx" if anthropic.__version__.startswith("0.") else "httpx2"
"""The HTTP library the installed SDK is built on: httpx for 0.x, httpx2 for 1.x and 2.x."""


def routed_sdk_client(path: str, router: Any, *, is_async: bool = False, **options: Any) -> Any:
    """An SDK client (`options` for its constructor) whose requests go through `router`:

    * ``wrap``: `caproute.wrap(client)`; ``wrap-middleware`` / ``wrap-transport``: with
      that ``via``;
    * ``middleware``: ``Anthropic(middleware=[caproute.middleware(...)])``;
    * ``transport``: ``Anthropic(http_client=caproute.routed_http_client(...))``.
    """
    sdk_class = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    options.setdefault("max_retries", 0)
    if path == "wrap":
        return caproute.wrap(sdk_class(**options), router=router)
    if path in ("wrap-middleware", "wrap-transport"):
        return caproute.wrap(sdk_class(**options), router=router, via=path.partition("-")[2])
    if path == "middleware":
        return sdk_class(middleware=[caproute.middleware(router=router)], **options)
    if path == "transport":
        factory = caproute.routed_async_http_client if is_async else caproute.routed_http_client
        return sdk_class(http_client=factory(router=router, flavour=HTTP_FLAVOUR), **options)
    raise AssertionError(f"unknown path {path!r}")
