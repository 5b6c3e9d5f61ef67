"""Routing on the SDK's HTTP path: the SDK middleware and the httpx/httpx2 transports."""

from .. import _logs  # noqa: F401  (masking on every caproute logger before any record)
