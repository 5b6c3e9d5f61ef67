"""Reading policy files: the IO half of `caproute._core.policy`.

The core parses text and never touches the file system (it is sans-IO), so the one
place that opens a policy file is here. Every failure, from a missing file to a bad
key, surfaces as a `PolicyError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ._exceptions import PolicyError

if TYPE_CHECKING:
    from ._core.policy import Policy

__all__ = ["load_policy", "read_policy_text"]


def read_policy_text(path: str | os.PathLike[str]) -> str:
    """The text of a policy file (UTF-8).

    Raises:
        PolicyError: the file is missing, unreadable or not UTF-8.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"not UTF-8 text: {exc.reason}", file=os.fspath(path)) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyError(f"cannot read the policy file: {reason}", file=os.fspath(path)) from exc


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a YAML routing policy file.

    Errors name the file, line and column (``policy.yaml:7:5: unknown key ...``).

    Raises:
        PolicyError: the file can't be read or the policy is invalid.
    """
    from ._core.policy import Policy

    return Policy.from_text(read_policy_text(path), filename=os.fspath(path))
