"""Configuration: one frozen Settings, built once from defaults < TOML file < environment < flags.

Every setting has a built-in default, so a box starts with no file at all. A bad file or value
raises ConfigError whose message names the setting (`server.port: ...`); the CLI prints that one
line and exits non-zero.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from artifacta_box.units import parse_duration, parse_size

ENV_PREFIX = "ARTIFACTA_BOX_"
CONFIG_ENV = "ARTIFACTA_BOX_CONFIG"


class ConfigError(Exception):
    """A setting is missing, malformed or out of range. The message names the setting."""


# --------------------------------------------------------------------------- value parsers

def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None


def parse_str(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def parse_list(value: Any) -> tuple[str, ...]:
    """A TOML array of strings, or a comma-separated string (for environment variables)."""
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return tuple(v.strip() for v in value if v.strip())
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    raise ValueError(f"expected a list of strings, got {value!r}")


def parse_optional_str(value: Any) -> str | None:
    if value is None:
        return None
    text = parse_str(value).strip()
    return text or None


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Plan:
    """What a tenant may do. Defined in `[plans.<name>]`; set per tenant by the admin."""

    name: str
    storage_bytes: int = 100 * 10**9
    requests_per_month: int = 100_000_000
    max_ttl_seconds: int = 3650 * 86400
    allow_never_ttl: bool = True
    default_ttl_seconds: int = 30 * 86400
    max_link_seconds: int = 365 * 86400
    max_active_links: int = 100_000
    max_active_keys: int = 1000
    max_metadata_filters: int = 10
    presigned_uploads: bool = True
    rate_sustained: float = 100.0
    rate_burst: int = 200
    max_multipart_bytes: int = 500 * 10**6
    max_json_bytes: int = 10 * 10**6
    max_presigned_bytes: int = 5 * 10**9


_PLAN_PARSERS = {
    "storage_bytes": parse_size,
    "requests_per_month": parse_int,
    "max_ttl": parse_duration,
    "allow_never_ttl": parse_bool,
    "default_ttl": parse_duration,
    "max_link_expiry": parse_duration,
    "max_active_links": parse_int,
    "max_active_keys": parse_int,
    "max_metadata_filters": parse_int,
    "presigned_uploads": parse_bool,
    "rate_sustained": parse_float,
    "rate_burst": parse_int,
    "max_multipart_size": parse_size,
    "max_json_size": parse_size,
    "max_presigned_size": parse_size,
}
# config-file key -> Plan attribute
_PLAN_ATTR = {
    "max_ttl": "max_ttl_seconds",
    "default_ttl": "default_ttl_seconds",
    "max_link_expiry": "max_link_seconds",
    "max_multipart_size": "max_multipart_bytes",
    "max_json_size": "max_json_bytes",
    "max_presigned_size": "max_presigned_bytes",
}

BUILTIN_PLANS: dict[str, Plan] = {
    # Generous enough that a fresh box never gets in the way.
    "selfhosted": Plan(name="selfhosted"),
    "free": Plan(
        name="free",
        storage_bytes=1 * 10**9,
        requests_per_month=10_000,
        max_ttl_seconds=90 * 86400,
        allow_never_ttl=False,
        max_link_seconds=30 * 86400,
        max_active_links=50,
        max_active_keys=10,
        max_metadata_filters=1,
    ),
    "pro": Plan(
        name="pro",
        storage_bytes=100 * 10**9,
        requests_per_month=1_000_000,
        max_ttl_seconds=365 * 86400,
        allow_never_ttl=True,
        max_link_seconds=90 * 86400,
        max_active_links=500,
        max_active_keys=50,
        max_metadata_filters=5,
    ),
}


def _build_plan(name: str, raw: Any, base: Plan) -> Plan:
    if not isinstance(raw, dict):
        raise ConfigError(f"plans.{name}: expected a table of settings")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        parser = _PLAN_PARSERS.get(key)
        if parser is None:
            known = ", ".join(sorted(_PLAN_PARSERS))
            raise ConfigError(f"plans.{name}.{key}: unknown plan setting (known: {known})")
        try:
            parsed = parser(value)
        except ValueError as exc:
            raise ConfigError(f"plans.{name}.{key}: {exc}") from None
        if isinstance(parsed, int | float) and not isinstance(parsed, bool) and parsed < 0:
            raise ConfigError(f"plans.{name}.{key}: must not be negative")
        changes[_PLAN_ATTR.get(key, key)] = parsed
    plan = replace(base, name=name, **changes)
    if plan.default_ttl_seconds > plan.max_ttl_seconds:
        raise ConfigError(f"plans.{name}.default_ttl: longer than max_ttl")
    if plan.rate_sustained <= 0 or plan.rate_burst < 1:
        raise ConfigError(f"plans.{name}.rate_sustained: rate_sustained and rate_burst must be positive")
    return plan


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    # [server]
    host: str = "127.0.0.1"
    port: int = 8787
    public_url: str | None = None
    workers: int = 1
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    shutdown_timeout: float = 30.0
    request_timeout: float = 60.0
    response_timeout: float = 3600.0
    keep_alive_timeout: float = 15.0
    sendfile: bool = True  # zero-copy downloads (os.sendfile); false = chunked reads
    # [storage]
    data_dir: str = "./artifacta-data"
    min_free_bytes: int = 100 * 10**6
    # [security]
    secret_key: str | None = None
    max_signed_url_seconds: int = 7 * 86400
    upload_url_seconds: int = 3600
    failed_auth_limit: int = 20
    failed_auth_window_seconds: int = 60
    # [retention]
    deleted_retention_seconds: int = 30 * 86400
    pending_grace_seconds: int = 3600
    orphan_grace_seconds: int = 3600
    idempotency_seconds: int = 86400
    gc_interval_seconds: int = 300
    # [logging]
    log_level: str = "INFO"
    access_log: bool = True
    log_format: str = "text"
    # [metrics]
    metrics_token: str | None = None
    # [tenants]
    default_plan: str = "selfhosted"
    upgrade_url: str | None = None
    # [plans.*]
    plans: dict[str, Plan] = field(default_factory=lambda: dict(BUILTIN_PLANS))
    # where the file came from, for `config show`
    config_file: str | None = None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    def plan(self, name: str) -> Plan:
        """The named plan; an unknown name (plan removed from the file) falls back to the default."""
        return self.plans.get(name) or self.plans[self.default_plan]


# (section, key) -> (Settings attribute, parser)
SETTINGS_SCHEMA: dict[tuple[str, str], tuple[str, Any]] = {
    ("server", "host"): ("host", parse_str),
    ("server", "port"): ("port", parse_int),
    ("server", "public_url"): ("public_url", parse_optional_str),
    ("server", "workers"): ("workers", parse_int),
    ("server", "trusted_proxies"): ("trusted_proxies", parse_list),
    ("server", "cors_origins"): ("cors_origins", parse_list),
    ("server", "shutdown_timeout"): ("shutdown_timeout", parse_float),
    ("server", "request_timeout"): ("request_timeout", parse_float),
    ("server", "response_timeout"): ("response_timeout", parse_float),
    ("server", "keep_alive_timeout"): ("keep_alive_timeout", parse_float),
    ("server", "sendfile"): ("sendfile", parse_bool),
    ("storage", "data_dir"): ("data_dir", parse_str),
    ("storage", "min_free_bytes"): ("min_free_bytes", parse_size),
    ("security", "secret_key"): ("secret_key", parse_optional_str),
    ("security", "max_signed_url_seconds"): ("max_signed_url_seconds", parse_duration),
    ("security", "upload_url_seconds"): ("upload_url_seconds", parse_duration),
    ("security", "failed_auth_limit"): ("failed_auth_limit", parse_int),
    ("security", "failed_auth_window"): ("failed_auth_window_seconds", parse_duration),
    ("retention", "deleted"): ("deleted_retention_seconds", parse_duration),
    ("retention", "pending_grace"): ("pending_grace_seconds", parse_duration),
    ("retention", "orphan_grace"): ("orphan_grace_seconds", parse_duration),
    ("retention", "idempotency"): ("idempotency_seconds", parse_duration),
    ("retention", "gc_interval"): ("gc_interval_seconds", parse_duration),
    ("logging", "level"): ("log_level", parse_str),
    ("logging", "access_log"): ("access_log", parse_bool),
    ("logging", "format"): ("log_format", parse_str),
    ("metrics", "token"): ("metrics_token", parse_optional_str),
    ("tenants", "default_plan"): ("default_plan", parse_str),
    ("tenants", "upgrade_url"): ("upgrade_url", parse_optional_str),
}

SECRET_ATTRS = {"secret_key", "metrics_token"}


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _validate(s: Settings) -> None:
    if not 0 < s.port < 65536:
        raise ConfigError(f"server.port: must be 1-65535, got {s.port}")
    if s.workers < 1:
        raise ConfigError(f"server.workers: must be at least 1, got {s.workers}")
    if s.public_url is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", s.public_url):
        raise ConfigError(f"server.public_url: must be an absolute http(s) URL, got {s.public_url!r}")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"logging.format: must be 'text' or 'json', got {s.log_format!r}")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"logging.level: must be DEBUG, INFO, WARNING or ERROR, got {s.log_level!r}")
    if s.default_plan not in s.plans:
        raise ConfigError(
            f"tenants.default_plan: no plan named {s.default_plan!r} "
            f"(defined: {', '.join(sorted(s.plans))})"
        )
    if s.secret_key is not None and len(s.secret_key) < 32:
        raise ConfigError("security.secret_key: must be at least 32 characters")
    if s.max_signed_url_seconds < 1 or s.upload_url_seconds < 1:
        raise ConfigError("security.max_signed_url_seconds: must be at least 1s")
    if s.failed_auth_limit < 1:
        raise ConfigError("security.failed_auth_limit: must be at least 1")
    for attr in ("shutdown_timeout", "request_timeout", "response_timeout", "keep_alive_timeout"):
        if getattr(s, attr) <= 0:
            raise ConfigError(f"server.{attr}: must be positive")
    if s.gc_interval_seconds < 1:
        raise ConfigError("retention.gc_interval: must be at least 1s")


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build Settings with precedence flag (`overrides`) > environment > file > default.

    `overrides` maps Settings attribute names to already-typed values (from click flags);
    None values are ignored so an unset flag never hides the layers beneath it.
    """
    env = os.environ if environ is None else environ
    path = config_file or env.get(CONFIG_ENV) or None
    values: dict[str, Any] = {}
    plans = dict(BUILTIN_PLANS)

    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config: file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
        for section, table in doc.items():
            if section == "plans":
                if not isinstance(table, dict):
                    raise ConfigError("plans: expected tables such as [plans.free]")
                for name, raw in table.items():
                    if not re.match(r"^[a-z][a-z0-9_-]{0,31}$", name):
                        raise ConfigError(f"plans.{name}: plan names are lowercase letters, digits, - and _")
                    base = BUILTIN_PLANS.get(name, Plan(name=name))
                    plans[name] = _build_plan(name, raw, base)
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{section}: expected a [{section}] table")
            for key, value in table.items():
                spec = SETTINGS_SCHEMA.get((section, key))
                if spec is None:
                    raise ConfigError(f"{section}.{key}: unknown setting")
                attr, parser = spec
                try:
                    values[attr] = parser(value)
                except ValueError as exc:
                    raise ConfigError(f"{section}.{key}: {exc}") from None
        # A relative data_dir in a file is relative to the file, not to the working directory.
        if "data_dir" in values and not os.path.isabs(os.path.expanduser(values["data_dir"])):
            values["data_dir"] = str(Path(path).resolve().parent / values["data_dir"])

    known_env = {env_name(sec, key): (sec, key) for sec, key in SETTINGS_SCHEMA}
    for name, raw_value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name not in known_env:
            continue  # other tools may share the prefix; only known names are read
        section, key = known_env[name]
        attr, parser = SETTINGS_SCHEMA[(section, key)]
        try:
            values[attr] = parser(raw_value)
        except ValueError as exc:
            raise ConfigError(f"{section}.{key} (from {name}): {exc}") from None

    for attr, value in (overrides or {}).items():
        if value is not None:
            values[attr] = value

    if values.get("public_url"):
        values["public_url"] = values["public_url"].rstrip("/")
    settings = Settings(plans=plans, config_file=str(path) if path else None, **values)
    _validate(settings)
    return settings


def effective_config(settings: Settings, mask_secrets: bool = True) -> dict[str, Any]:
    """The effective configuration as nested sections, for `config show`."""
    out: dict[str, Any] = {}
    for (section, key), (attr, _parser) in SETTINGS_SCHEMA.items():
        value = getattr(settings, attr)
        if mask_secrets and attr in SECRET_ATTRS and value:
            value = "********"
        if isinstance(value, tuple):
            value = list(value)
        out.setdefault(section, {})[key] = value
    plans: dict[str, Any] = {}
    for name, plan in sorted(settings.plans.items()):
        plans[name] = {f.name: getattr(plan, f.name) for f in fields(plan) if f.name != "name"}
    out["plans"] = plans
    out["config_file"] = settings.config_file
    return out
