"""Where `caproute serve` gets its settings: flags, ``CAPROUTE_*`` variables and a config file.

One table, `SETTINGS`, names every setting once; the command-line flags, the
environment variables and the config file's keys are all derived from it, so the
three can't drift apart (`tests/proxy/test_proxy_settings.py` checks the docs list
them all). Precedence, per setting: **flag > environment > file > default**.

* Flag ``--max-body-bytes`` ↔ variable ``CAPROUTE_MAX_BODY_BYTES`` ↔ file key
  ``limits.max_body_bytes``. Booleans are ``--allow-bypass`` / ``--no-allow-bypass``
  and ``1/true/yes/on`` or ``0/false/no/off`` in the environment.
* The config file is YAML, validated as strictly as a routing policy, by the same
  machinery (`caproute._core.yaml_text.check_model_text`): unknown keys and wrong types
  are errors reading ``file:line:column: message`` with a did-you-mean. Relative paths
  in it are relative to the file.
* Secrets are never values in a file or on the command line: the file and the flags
  name the *variables* holding them (``api_key_env``, ``require_token_env``,
  ``admin.token_env``). ``CAPROUTE_REQUIRE_TOKEN`` and ``CAPROUTE_ADMIN_TOKEN`` (or
  ``--require-token`` / ``--admin-token``, for quick trials) are the only settings
  that are secrets themselves.

Building the argument parser imports nothing heavy; pydantic is loaded only to read a
config file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._exceptions import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._config import ProxyConfig

Kind = Literal["str", "int", "port", "float", "bool", "path", "choice"]

ENV_PREFIX = "CAPROUTE_"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting of `caproute serve`, as a flag, a variable and a file key."""

    name: str
    """The `ProxyConfig` field it sets (or ``api_key_env`` / ``require_token_env`` /
    ``require_token`` / ``config``, resolved into fields)."""
    file_key: tuple[str, ...] | None
    """Where it lives in the config file (`None`: not a file setting)."""
    kind: Kind
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--max-body-bytes``."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``CAPROUTE_MAX_BODY_BYTES``."""
        return ENV_PREFIX + self.name.upper()


def _s(
    name: str,
    file_key: str | None,
    kind: Kind,
    help: str,
    metavar: str | None = None,
    choices: tuple[str, ...] = (),
) -> Setting:
    key = tuple(file_key.split(".")) if file_key else None
    return Setting(name, key, kind, help, metavar, choices)


SETTINGS: tuple[Setting, ...] = (
    _s(
        "config",
        None,
        "path",
        "read settings from this YAML file (flags and CAPROUTE_* variables override it)",
        "FILE",
    ),
    _s(
        "upstream",
        "upstream",
        "str",
        "where to forward (default: https://api.anthropic.com)",
        "URL",
    ),
    _s("host", "listen.host", "str", "interface to bind (default: 127.0.0.1)"),
    _s("port", "listen.port", "port", "port (default: 8787)"),
    _s(
        "workers",
        "workers",
        "int",
        "worker processes sharing the port (default: 1); "
        "registries, learned facts and metrics are per worker",
        "N",
    ),
    _s("policy", "policy", "path", "routing policy, reloaded on change and SIGHUP", "FILE"),
    _s(
        "snapshot",
        "snapshot",
        "path",
        "registry snapshot to route with (re-read on change); "
        "in pass-through mode the shared fallback for callers",
        "FILE",
    ),
    _s(
        "api_key_env",
        "credentials.api_key_env",
        "str",
        "own-key mode: use the API key in this "
        "environment variable (callers then need a local token)",
        "NAME",
    ),
    _s(
        "require_token_env",
        "credentials.require_token_env",
        "str",
        "the local token callers must present, from this variable",
        "NAME",
    ),
    _s(
        "require_token",
        None,
        "str",
        "the local token itself (shows in the process list: prefer --require-token-env)",
        "TOKEN",
    ),
    _s(
        "max_registries",
        "registries.max",
        "int",
        "pass-through mode: callers whose registries are kept (default: 64)",
        "N",
    ),
    _s(
        "registry_ttl",
        "registries.ttl",
        "float",
        "seconds a caller's registry stays fresh (default: 3600)",
        "S",
    ),
    _s(
        "first_fetch_timeout",
        "registries.first_fetch_timeout",
        "float",
        "how long a new caller's first request waits for its registry (default: 5)",
        "S",
    ),
    _s(
        "registry_cache_dir",
        "registries.cache_dir",
        "path",
        "cache caller registries here, one 0600 file per key hash (default: memory only)",
        "DIR",
    ),
    _s(
        "stale_after",
        "registries.stale_after",
        "float",
        "health is 'degraded' when a registry in use is older (default: 7200)",
        "S",
    ),
    _s(
        "max_body_bytes",
        "limits.max_body_bytes",
        "int",
        "largest request body, else 413 (default: 33554432, 32 MiB)",
        "N",
    ),
    _s(
        "max_json_values",
        "limits.max_json_values",
        "int",
        "most JSON values a routed body may hold, else 413 (default: max body bytes / 32)",
        "N",
    ),
    _s(
        "max_header_bytes",
        "limits.max_header_bytes",
        "int",
        "largest request head, else 431 (default: 65536)",
        "N",
    ),
    _s(
        "max_header_count",
        "limits.max_header_count",
        "int",
        "most request headers, else 431 (default: 100)",
        "N",
    ),
    _s(
        "max_connections",
        "limits.max_connections",
        "int",
        "open connections per worker, beyond: 503 (default: 1024)",
        "N",
    ),
    _s(
        "max_error_body_bytes",
        "limits.max_error_body_bytes",
        "int",
        "largest upstream "
        "400/404 body read to re-route; larger ones pass through unread (default: 65536)",
        "N",
    ),
    _s(
        "connect_timeout", "timeouts.connect", "float", "upstream connect timeout (default: 5)", "S"
    ),
    _s("read_timeout", "timeouts.read", "float", "upstream read timeout (default: 600)", "S"),
    _s(
        "header_timeout",
        "timeouts.header",
        "float",
        "time a caller has to send a request's headers, else 408 (default: 10)",
        "S",
    ),
    _s(
        "keepalive_timeout",
        "timeouts.keepalive",
        "float",
        "idle connections are closed after this long (default: 5)",
        "S",
    ),
    _s(
        "body_timeout",
        "timeouts.body",
        "float",
        "time a caller has to send its body, else 408 (default: 60)",
        "S",
    ),
    _s(
        "shutdown_timeout",
        "timeouts.shutdown",
        "float",
        "on shutdown, time in-flight responses get to finish (default: 30)",
        "S",
    ),
    _s(
        "poll_interval",
        "poll_interval",
        "float",
        "seconds between checks of the policy and snapshot files (default: 1)",
        "S",
    ),
    _s(
        "allow_bypass",
        "controls.bypass",
        "bool",
        "honour the 'caproute-bypass: 1' request header (default: off)",
    ),
    _s(
        "allow_route_header",
        "controls.route",
        "bool",
        "honour the 'caproute-route: NAME' request header (default: off)",
    ),
    _s(
        "log_level",
        "logging.level",
        "choice",
        "how much to log (default: info)",
        None,
        ("critical", "error", "warning", "info", "debug"),
    ),
    _s(
        "log_format",
        "logging.format",
        "choice",
        "one format for caproute's and uvicorn's lines (default: text)",
        None,
        ("text", "json"),
    ),
    _s("metrics", "metrics.enabled", "bool", "serve /caproute/metrics (default: on)"),
    _s(
        "admin_listen",
        "admin.listen",
        "str",
        "serve /caproute/* on this second address only, HOST:PORT or PORT; the main "
        "port then answers only /caproute/health's status (default: the main port)",
        "HOST:PORT",
    ),
    _s(
        "admin_token_env",
        "admin.token_env",
        "str",
        "/caproute/* need the token in this variable (bearer or x-api-key); without it "
        "health answers its status only, registry and metrics 401 (default: no token)",
        "NAME",
    ),
    _s(
        "admin_token",
        None,
        "str",
        "the admin token itself (shows in the process list: prefer --admin-token-env)",
        "TOKEN",
    ),
)
"""Every setting, in the order of ``caproute serve --help``."""

BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}

_SECRET_VARIABLES = ("api_key_env", "require_token_env", "admin_token_env")
_SECRETS = frozenset({"require_token", "admin_token"})
"""Settings whose value is itself a secret (never shown)."""
_NOT_CONFIG_FIELDS = frozenset({"config", *_SECRET_VARIABLES, *_SECRETS})
_EXCLUSIVE = ({"require_token", "require_token_env"}, {"admin_token", "admin_token_env"})
"""Pairs of flags of which one may be given: a secret, or the variable holding it."""


# -- the command line --------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting (every default `None`: unset flags don't override)."""
    groups: dict[int, argparse._MutuallyExclusiveGroup] = {}
    for setting in SETTINGS:
        target: Any = parser
        for index, pair in enumerate(_EXCLUSIVE):
            if setting.name in pair:
                if index not in groups:
                    groups[index] = parser.add_mutually_exclusive_group()
                target = groups[index]
        options: dict[str, Any] = {"help": setting.help, "default": None}
        if setting.kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["metavar"] = setting.metavar
            options["type"] = _ARG_TYPES[setting.kind]
            if setting.choices:
                options["choices"] = setting.choices
                options.pop("metavar")
        target.add_argument(setting.flag, dest=setting.name, **options)


_ARG_TYPES: Mapping[Kind, Any] = {
    "str": str,
    "int": int,
    "port": int,
    "float": float,
    "path": Path,
    "choice": str,
}


def from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags."""
    return {
        s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None
    }


# -- the environment ---------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``CAPROUTE_*`` variables (empty ones count as unset).

    Raises:
        ConfigError: A value doesn't parse; the message names the variable (and, for
            the token, never shows the value).
    """
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env, "").strip()
        if raw:
            values[setting.name] = _parse(setting, raw)
    return values


def _parse(setting: Setting, raw: str) -> Any:
    shown = "(hidden)" if setting.name in _SECRETS else repr(raw)
    try:
        if setting.kind == "bool":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError
        if setting.kind in ("int", "port"):
            return int(raw)
        if setting.kind == "float":
            return float(raw)
        if setting.kind == "path":
            return Path(raw)
        if setting.choices and raw.lower() not in setting.choices:
            raise ValueError
        return raw.lower() if setting.choices else raw
    except ValueError:
        expected = _EXPECTED[setting.kind]
        if setting.choices:
            expected = "one of " + ", ".join(setting.choices)
        raise ConfigError(f"{setting.env}: expected {expected}, got {shown}") from None


_EXPECTED: Mapping[Kind, str] = {
    "str": "a string",
    "int": "an integer",
    "port": "a port number",
    "float": "a number",
    "bool": "1/true/yes/on or 0/false/no/off",
    "path": "a path",
    "choice": "a choice",
}


# -- the config file ----------------------------------------------------------------------


def config_model() -> type[BaseModel]:
    """The pydantic model of the config file, built from `SETTINGS` (cached)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = _build_model()
    return _MODEL


_MODEL: type[BaseModel] | None = None


def _field_type(setting: Setting) -> Any:
    from typing import Annotated

    from pydantic import Field, StrictBool, StrictInt, StrictStr

    if setting.kind == "bool":
        return StrictBool
    if setting.kind == "int":
        return Annotated[StrictInt, Field(gt=0)]
    if setting.kind == "port":
        return Annotated[StrictInt, Field(ge=0, le=65535)]
    if setting.kind == "float":
        return Annotated[float, Field(gt=0, strict=True)]
    if setting.kind == "choice":
        return Literal[setting.choices]
    return Annotated[StrictStr, Field(min_length=1)]


def _build_model() -> type[BaseModel]:
    from pydantic import BaseModel, ConfigDict, create_model

    strict = ConfigDict(extra="forbid", frozen=True)
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.file_key is None:
            continue
        field = (_field_type(setting) | None, None)
        if len(setting.file_key) == 1:
            top[setting.file_key[0]] = field
        else:
            sections.setdefault(setting.file_key[0], {})[setting.file_key[1]] = field
    for section, fields in sections.items():
        model = create_model(section.capitalize(), __config__=strict, **fields)
        model.__doc__ = f"The config file's `{section}` section."
        top[section] = (model | None, None)
    root: type[BaseModel] = create_model("ServerConfig", __config__=strict, **top)
    assert issubclass(root, BaseModel)
    return root


def _file_values(document: BaseModel, base: Path) -> dict[str, Any]:
    """Setting name → value for what the file sets (relative paths made absolute)."""
    values: dict[str, Any] = {}
    data = document.model_dump(exclude_none=True)
    for setting in SETTINGS:
        if setting.file_key is None:
            continue
        node: Any = data
        for part in setting.file_key:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        if setting.kind == "path":
            node = base / Path(node).expanduser()
        values[setting.name] = node
    return values


def check_config_text(
    text: str, *, filename: str, files: bool = False
) -> tuple[dict[str, Any] | None, tuple[Any, ...]]:
    """Validate a server config file's text.

    Args:
        text: The file's text.
        filename: Its name, for the errors (relative paths in it are relative to it).
        files: Also check that the policy file it names can be read and the snapshot
            it names loads (`caproute check`); the errors point at their keys.

    Returns:
        The settings it gives (`None` if invalid) and its errors (`PolicyError`s, each
        ``file:line:column: message``), sorted by position.
    """
    from .._core.yaml_text import check_model_text

    base = Path(filename).resolve().parent

    def semantic(document: BaseModel) -> Iterator[tuple[tuple[str | int, ...], str]]:
        yield from _semantic(document)
        if files:
            yield from _named_file_problems(document, base)

    document, errors = check_model_text(
        text, config_model(), filename=filename, what="server config", semantic=semantic
    )
    if document is None:
        return None, errors
    return _file_values(document, base), ()


def _named_file_problems(
    document: BaseModel, base: Path
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """The policy file named can't be read, or the snapshot named doesn't load."""
    from .._exceptions import PolicyError, SnapshotError
    from .._registry.policy_files import read_policy_text
    from .._registry.snapshot import load_snapshot

    data = document.model_dump(exclude_none=True)
    if "policy" in data:
        try:
            read_policy_text(base / Path(data["policy"]).expanduser())
        except PolicyError as exc:
            yield ("policy",), f"{exc.file}: {exc.message}"
    if "snapshot" in data:
        try:
            load_snapshot(base / Path(data["snapshot"]).expanduser())
        except SnapshotError as exc:
            yield ("snapshot",), str(exc)


def _semantic(document: BaseModel) -> Iterator[tuple[tuple[str | int, ...], str]]:
    from ._config import _check_upstream

    data = document.model_dump(exclude_none=True)
    upstream = data.get("upstream")
    if upstream is not None:
        try:
            _check_upstream(upstream)
        except ConfigError as exc:
            yield ("upstream",), str(exc)
    admin = data.get("admin", {})
    if "listen" in admin:
        from ._config import parse_listen

        listen = data.get("listen", {})
        try:
            _, admin_port = parse_listen(admin["listen"], listen.get("host", "127.0.0.1"))
        except ConfigError as exc:
            yield ("admin", "listen"), str(exc).removeprefix("admin_listen: ")
        else:
            if admin_port == listen.get("port", 8787):
                yield (
                    ("admin", "listen"),
                    f"port {admin_port} is the main port (listen.port); give the admin "
                    "listener a port of its own",
                )
    credentials = data.get("credentials", {})
    if "require_token_env" in credentials and "api_key_env" not in credentials:
        yield (
            ("credentials", "require_token_env"),
            "a local token is for own-key mode: set credentials.api_key_env too "
            "(in pass-through mode callers authenticate with their own key)",
        )


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a config file gives.

    Raises:
        ConfigError: The file can't be read; `PolicyError` (a `ConfigError`) for the
            first problem in it, as ``file:line:column: message``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot read the server config {path}: {reason}") from None
    values, errors = check_config_text(text, filename=os.fspath(path))
    if values is None:
        raise errors[0]
    return values


def looks_like_server_config(text: str) -> bool:
    """Whether YAML text is a server config rather than a routing policy (for `caproute check`).

    A policy's top-level keys are ``version``, ``defaults``, ``routes`` (and ``$schema``);
    a server config has none of them and at least one of its own.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(data, dict):
        return False
    keys = set(map(str, data))
    server_keys = {s.file_key[0] for s in SETTINGS if s.file_key}
    return bool(keys & server_keys) and not keys & {"version", "defaults", "routes", "$schema"}


# -- putting it together ------------------------------------------------------------------


def resolve(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[ProxyConfig, dict[str, str]]:
    """The `ProxyConfig` from flags, environment and config file, flag > env > file.

    Args:
        flags: Settings given on the command line (`from_arguments`).
        environ: The environment (default `os.environ`).

    Returns:
        The configuration, and where each setting came from (``flag``, ``env``,
        ``file``), for the start-up log line.

    Raises:
        ConfigError: A bad value, file or combination; messages never show a secret.
    """
    from ._config import ProxyConfig

    environ = os.environ if environ is None else environ
    env_values = from_environment(environ)
    config_file = flags.get("config") or env_values.get("config")
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        layers.append(("file", read_config_file(Path(config_file))))
    layers += [("env", env_values), ("flag", flags)]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for where, layer in layers:
        for name, value in layer.items():
            values[name] = value
            origin[name] = where
    options = {k: v for k, v in values.items() if k not in _NOT_CONFIG_FIELDS}
    options["api_key"] = _secret(values.get("api_key_env"), "api_key_env", environ)
    token = values.get("require_token")
    if token is None:
        token = _secret(values.get("require_token_env"), "require_token_env", environ)
    options["require_token"] = token
    admin_token = values.get("admin_token")
    if admin_token is None:
        admin_token = _secret(values.get("admin_token_env"), "admin_token_env", environ)
    options["admin_token"] = admin_token
    return ProxyConfig(**options), origin


def _secret(variable: str | None, name: str, environ: Mapping[str, str]) -> str | None:
    if variable is None:
        return None
    value = environ.get(variable, "").strip()
    if not value:
        # Name the variable, never a value.
        raise ConfigError(
            f"{BY_NAME[name].flag}: environment variable {variable} is not set or empty"
        )
    return value


def settings_table() -> Iterable[tuple[str, str, str]]:
    """``(flag, variable, file key)`` per setting, for the docs."""
    for setting in SETTINGS:
        key = ".".join(setting.file_key) if setting.file_key else "—"
        yield setting.flag, setting.env, key
