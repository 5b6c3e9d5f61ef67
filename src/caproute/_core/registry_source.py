"""Where a registry's data came from and when (`RegistrySource`), and how a snapshot
file stores it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RegistrySource", "SourceKind", "StoredSource", "human_seconds"]


SourceKind = Literal["live", "snapshot", "cache", "embedded", "static"]


@dataclass(frozen=True, slots=True)
class RegistrySource:
    """Where a registry's data came from and when."""

    kind: SourceKind
    """`live` (Models API), `snapshot` (an explicit file), `cache` (the user cache file),
    `embedded` (shipped in the package) or `static` (built in code)."""
    fetched_at: float | None = None
    """Unix time (seconds) the data was fetched from the API; `None` if never."""
    location: str | None = None
    """The base URL or file path it came from (never a key)."""
    describes: str | None = None
    """For the embedded snapshot: the date (YYYY-MM-DD) of the lineup it describes."""

    def age(self, now: float) -> float | None:
        """Seconds since the data was fetched, given the current Unix time."""
        return None if self.fetched_at is None else max(0.0, now - self.fetched_at)

    def describe(self, now: float | None = None) -> str:
        """A short human description, e.g. ``live (https://api.anthropic.com, 12s old)``."""
        bits = [b for b in (self.location, self.describes and f"lineup of {self.describes}") if b]
        if now is not None and (age := self.age(now)) is not None:
            bits.append(f"{human_seconds(age)} old")
        return f"{self.kind} ({', '.join(bits)})" if bits else self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "fetched_at": self.fetched_at,
            "location": self.location,
            "describes": self.describes,
        }


class StoredSource(BaseModel):
    """A snapshot's ``source`` object (the `RegistrySource` it was saved from)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    kind: SourceKind = "snapshot"
    fetched_at: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    location: str | None = None
    describes: str | None = None


def human_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
