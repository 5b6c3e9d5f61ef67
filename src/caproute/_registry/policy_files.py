"""Reading policy files: the IO half of `caproute._core.policy`.

The core parses text and never touches the file system (it is sans-IO), so the one
place that opens a policy file is here. Every failure, from a missing file to a bad
key, surfaces as a `PolicyError` naming the file.

Every way a policy comes in (`caproute check`, `wrap(policy=path)`, `caproute serve`
and its hot reload) reads it here, under the same limits (`policy_limits`): a file
over the size limit is refused before it is read whole, and the node and depth limits
stop composition of the YAML before anything is validated (a YAML alias bomb costs
the limit's worth of work, not what it expands to).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._exceptions import ConfigError, PolicyError
from .files import read_capped

if TYPE_CHECKING:
    from .._core.policy import Policy
    from .._core.yaml_text import TextLimits  # pydantic: imported when a policy is read

__all__ = ["load_policy", "policy_limits", "read_capped_text", "read_policy_text"]

LIMITS_SETTING = "CAPROUTE_POLICY_MAX_"
"""The environment variables that change the limits: ``CAPROUTE_POLICY_MAX_BYTES``,
``CAPROUTE_POLICY_MAX_NODES`` and ``CAPROUTE_POLICY_MAX_DEPTH``."""


def policy_limits() -> TextLimits:
    """The limits policy files are read under: `TextLimits`' defaults, each replaced by
    its ``CAPROUTE_POLICY_MAX_*`` environment variable when set (read on every load, so
    a hot reload sees a changed environment only after a restart, like every setting).

    Raises:
        ConfigError: a variable is not a positive integer.
    """
    from .._core.yaml_text import TextLimits  # pydantic: imported when a policy is read

    defaults = TextLimits()
    values = {}
    for name in ("bytes", "nodes", "depth"):
        var = f"{LIMITS_SETTING}{name.upper()}"
        raw = os.environ.get(var, "").strip()
        default: int = getattr(defaults, f"max_{name}")
        values[f"max_{name}"] = _positive(var, raw) if raw else default
    return TextLimits(**values, setting=LIMITS_SETTING)


def _positive(var: str, raw: str) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{var} must be a positive integer, not {raw!r}")
    return value


def read_capped_text(path: str | os.PathLike[str], limits: TextLimits, what: str) -> str:
    """The UTF-8 text of a YAML file (a `what`: policy, server config), refused unread
    when over ``limits.max_bytes``.

    Raises:
        PolicyError: The file is over the size limit.
        OSError, UnicodeDecodeError: As reading and decoding raise them (each caller
            words its own error).
    """
    from .._core.yaml_text import size_error

    data, over = read_capped(path, limits.max_bytes)
    if over is not None:
        raise size_error(over, limits, os.fspath(path), what)
    return data.decode("utf-8")


def read_policy_text(path: str | os.PathLike[str], limits: TextLimits | None = None) -> str:
    """The text of a policy file (UTF-8), refused unread when over the size limit.

    Raises:
        PolicyError: the file is missing, unreadable, not UTF-8 or over
            ``limits.max_bytes`` (default: `policy_limits()`).
    """
    limits = limits or policy_limits()
    name = os.fspath(path)
    try:
        return read_capped_text(path, limits, "policy")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"not UTF-8 text: {exc.reason}", file=name) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyError(f"cannot read the policy file: {reason}", file=name) from exc


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a YAML routing policy file.

    Errors name the file, line and column (``policy.yaml:7:5: unknown key ...``).

    Raises:
        PolicyError: the file can't be read, is over a limit (`policy_limits`) or the
            policy is invalid.
    """
    from .._core.policy import Policy

    limits = policy_limits()
    return Policy.from_text(read_policy_text(path, limits), filename=os.fspath(path), limits=limits)


_reported: dict[tuple[int, str], None] = {}
"""(policy hash, registry description) pairs already reported, oldest first (bounded)."""


def log_policy_warnings(given: object, policy: Policy, registry: object = None) -> None:
    """Log what `caproute check` would warn about `policy` (a candidate matching no
    model, with its did-you-mean), once per policy and registry, on the ``caproute``
    logger at WARNING.

    `wrap()` calls this when it is given a policy, so a typo such as
    ``claude-haiku-4.5`` shows when the client is wrapped instead of as a refusal at
    request time. The registry checked against is `registry` when it is a `Registry`,
    else the best one available offline (what `caproute check` uses); nothing is
    fetched.
    """
    if given is None or not policy.routes:
        return
    import logging

    from .._core.policy_check import registry_warnings
    from .._core.registry import Registry
    from .snapshot import initial_registry

    checked = registry if isinstance(registry, Registry) else initial_registry()
    seen = (hash(policy), checked.source.describe())
    if seen in _reported:
        return
    _reported[seen] = None
    if len(_reported) > 64:
        del _reported[next(iter(_reported))]
    logger = logging.getLogger("caproute")
    for warning in registry_warnings(policy, checked):
        logger.warning("%s (registry: %s)", warning, checked.source.describe())
