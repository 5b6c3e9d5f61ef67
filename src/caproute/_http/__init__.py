"""Routing on the SDK's HTTP path: the SDK middleware and the httpx/httpx2 transports."""
