"""Where capability registries come from: the Models API fetchers (`fetch`,
`fetch_async`, over `fetch_state` and `models_api`), the interface every registry
source offers a router (`source`), snapshots on disk and policy files."""

from .. import _logs  # noqa: F401  (masking on every caproute logger before any record)
