"""caproute's exceptions.

The tree::

    CaprouteError
    ├── ConfigError               you configured something wrong (fix the file / argument)
    │   ├── PolicyError           a routing policy is invalid; carries file:line:column
    │   ├── BatchInputError       a batch input file has bad lines; nothing was submitted
    │   └── BatchStateError       a batch state directory cannot be used as asked
    └── RuntimeFailure            something failed while running
        ├── RegistryError         the capability registry could not be built or read
        │   ├── RegistryHTTPError the Models API answered with an error status
        │   ├── RegistryUnavailableError  unreachable or failing, and no data to serve
        │   └── SnapshotError     a snapshot file is missing, unreadable or corrupt
        └── BatchAPIError         the Message Batches API answered with an error

A request the policy refuses raises no caproute error: it is answered locally with an
API-shaped 400 (through the SDK, `anthropic.BadRequestError`), see docs/sdk.md.

Messages never contain an API key: errors built from HTTP answers carry the status,
the API's error type and message, and the request id, nothing from the request headers
(`RegistryHTTPError` and `BatchAPIError` share them through `APIAnswerError`, which is
not exported).
"""

from __future__ import annotations


class CaprouteError(Exception):
    """Base class of every error caproute raises on purpose."""


class ConfigError(CaprouteError):
    """A configuration mistake: a bad argument, file or environment variable."""


class PolicyError(ConfigError):
    """A routing policy is invalid.

    `str(error)` reads `file:line:column: message`, like a compiler diagnostic.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        super().__init__(self._render())

    @property
    def location(self) -> str:
        """`file:line:column` (parts that are unknown are left out)."""
        parts = [self.file or "<policy>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def _render(self) -> str:
        where = f" (at {self.path})" if self.path else ""
        return f"{self.location}: {self.message}{where}"


class RuntimeFailure(CaprouteError):
    """Something failed at run time (network, files, the upstream API)."""


class RegistryError(RuntimeFailure):
    """The capability registry could not be built or read."""


class APIAnswerError(RuntimeFailure):
    """An API answered with an error: its HTTP status, ``error.type`` and request id,
    each `None` when unknown (the base of `RegistryHTTPError` and `BatchAPIError`)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        super().__init__(message)


def answer_text(
    status_code: int, error_type: str | None, message: str, request_id: str | None
) -> str:
    """``HTTP 404 not_found_error: message (request-id …)`` (parts that are unknown left out)."""
    kind = f" {error_type}" if error_type else ""
    rid = f" (request-id {request_id})" if request_id else ""
    return f"HTTP {status_code}{kind}: {message}{rid}"


class RegistryHTTPError(RegistryError, APIAnswerError):
    """The Models API answered with an error status that is not retried (or retries ran out)."""

    status_code: int

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.api_message = message
        super().__init__(
            f"Models API answered {answer_text(status_code, error_type, message, request_id)}",
            status_code=status_code,
            error_type=error_type,
            request_id=request_id,
        )


class RegistryUnavailableError(RegistryError):
    """The Models API could not be reached (or kept failing) and there is no data to serve."""


class SnapshotError(RegistryError):
    """A registry snapshot file is missing, unreadable or not a caproute snapshot."""
