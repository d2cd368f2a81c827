"""Configuration: one frozen Settings, built once from defaults < TOML file < environment < flags.

Every setting has a built-in default, so a box starts with no file at all. A bad file or value
raises ConfigError whose message names the setting (`server.port: ...`); the CLI prints that one
line and exits non-zero.

Each setting is declared once, as a field of `Settings` made by `setting()`: its TOML section
and key, parser, default, help and whether it is a secret (Datasette's `SETTINGS` list, kept on
the dataclass so the field and its declaration cannot drift). Likewise each plan field is a
field of `Plan` made by `plan_field()`. Everything else derives from those declarations:
`SETTINGS` and `PLAN_FIELDS` (the file schema), the environment variable names
(`ARTIFACTA_BOX_<SECTION>_<KEY>`), the range checks and their messages, `config show`
(`config_toml`, TOML that `--config` reads back to the same Settings) and the test that
`config.example.toml` documents every one.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from artifacta_box.storage.s3.settings import S3Settings, S3SettingsError
from artifacta_box.units import format_duration, format_size, parse_duration, parse_size

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


# --------------------------------------------------------------------------- declarations

# A check returns None when the value is fine, else what is wrong ("must be at least 1, got 0").
Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Setting:
    """One setting of the file/environment: where it lives, how it is read and what it means."""

    attr: str        # the Settings attribute
    section: str     # [section] of the TOML file
    key: str         # key within the section
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False
    check: Check | None = None

    @property
    def name(self) -> str:
        """`section.key`, as every message about this setting names it."""
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return env_name(self.section, self.key)


@dataclass(frozen=True)
class PlanField:
    """One field of a `[plans.<name>]` table."""

    attr: str        # the Plan attribute
    key: str         # key within the plan's table
    parse: Callable[[Any], Any]
    help: str


def setting(section: str, default: Any, parse: Callable[[Any], Any], help: str, *,
            key: str | None = None, secret: bool = False, check: Check | None = None) -> Any:
    """A Settings field declared with everything the file, environment and docs need."""
    return field(default=default, metadata={
        "setting": {"section": section, "key": key, "parse": parse, "help": help,
                    "secret": secret, "check": check},
    })


def plan_field(default: Any, parse: Callable[[Any], Any], help: str, *,
               key: str | None = None) -> Any:
    """A Plan field with the key and parser of its `[plans.<name>]` entry."""
    return field(default=default, metadata={"plan": {"key": key, "parse": parse, "help": help}})


# The largest storage.inline_max_bytes: a body held in memory while it streams and read whole
# with its row (measured: inline beats a file up to ~64 KiB and loses 0.39x at 256 KiB).
INLINE_MAX_LIMIT = 1024 * 1024


def _at_least(minimum: int, unit: str = "") -> Check:
    return lambda v: None if v >= minimum else f"must be at least {minimum}{unit}, got {v}{unit}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be positive, got {v}"


def _port(v: int) -> str | None:
    return None if 0 < v < 65536 else f"must be 1-65535, got {v}"


def _one_of(*choices: str, fold: bool = False, quoted: bool = False) -> Check:
    """The value is one of `choices` (compared upper-cased when `fold`)."""
    names = [repr(c) if quoted else c for c in choices]
    shown = " or ".join(", ".join(names).rsplit(", ", 1))

    def check(v: str) -> str | None:
        return None if (v.upper() if fold else v) in choices else f"must be {shown}, got {v!r}"

    return check


def _http_url(v: str | None) -> str | None:
    if v is None or re.fullmatch(r"^https?://[^\s/]+(/\S*)?$", v):
        return None
    return f"must be an absolute http(s) URL, got {v!r}"


MIN_SECRET_KEY = 32
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """server.workers by default: one per CPU core this process may run on (its affinity, so a
    container or taskset limit counts), at most MAX_DEFAULT_WORKERS. On 2 cores two workers
    answered 4 KiB uploads, downloads and lists faster than one process, with no worse p99
    (bench/compare.py, README "Benchmarks")."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def _secret_key(v: str | None) -> str | None:
    if v is None or len(v) >= MIN_SECRET_KEY:
        return None
    return f"must be at least {MIN_SECRET_KEY} characters"


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Plan:
    """What a tenant may do. Defined in `[plans.<name>]`; set per tenant by the admin."""

    name: str
    storage_bytes: int = plan_field(100 * 10**9, parse_size, "bytes of artifacts a tenant may keep")
    requests_per_month: int = plan_field(100_000_000, parse_int, "API requests per calendar month")
    max_ttl_seconds: int = plan_field(3650 * 86400, parse_duration, "longest ttl an artifact may have",
                                      key="max_ttl")
    allow_never_ttl: bool = plan_field(True, parse_bool, "whether ttl 'never' is allowed")
    default_ttl_seconds: int = plan_field(30 * 86400, parse_duration,
                                          "ttl of an upload that names none", key="default_ttl")
    max_link_seconds: int = plan_field(365 * 86400, parse_duration, "longest share link",
                                       key="max_link_expiry")
    max_active_links: int = plan_field(100_000, parse_int, "share links alive at once")
    max_active_keys: int = plan_field(1000, parse_int, "API keys not revoked at once")
    max_pages: int = plan_field(10_000, parse_int, "artifact pages published at once (/a/)")
    max_metadata_filters: int = plan_field(10, parse_int, "metadata.<key> filters per list query")
    presigned_uploads: bool = plan_field(True, parse_bool, "whether upload-url is available")
    rate_sustained: float = plan_field(100.0, parse_float, "rate limit: tokens per second")
    rate_burst: int = plan_field(200, parse_int, "rate limit: bucket size")
    anonymous_rate_sustained: float = plan_field(
        100.0, parse_float, "anonymous byte routes (/d/, /l/): tokens per second, a bucket of "
        "the tenant's own apart from its API's")
    anonymous_rate_burst: int = plan_field(200, parse_int, "anonymous byte routes: bucket size")
    max_multipart_bytes: int = plan_field(500 * 10**6, parse_size, "largest multipart upload",
                                          key="max_multipart_size")
    max_json_bytes: int = plan_field(10 * 10**6, parse_size,
                                     "largest base64 JSON upload, decoded", key="max_json_size")
    max_presigned_bytes: int = plan_field(5 * 10**9, parse_size, "largest presigned upload",
                                          key="max_presigned_size")


PLAN_FIELDS: tuple[PlanField, ...] = tuple(
    PlanField(attr=f.name, key=f.metadata["plan"]["key"] or f.name,
              parse=f.metadata["plan"]["parse"], help=f.metadata["plan"]["help"])
    for f in fields(Plan) if "plan" in f.metadata
)
_PLAN_FIELD_BY_KEY = {pf.key: pf for pf in PLAN_FIELDS}

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
        max_pages=10,
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
        max_pages=200,
        max_metadata_filters=5,
    ),
}
PLAN_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _build_plan(name: str, raw: Any, base: Plan) -> Plan:
    if not isinstance(raw, dict):
        raise ConfigError(f"plans.{name}: expected a table of settings")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        pf = _PLAN_FIELD_BY_KEY.get(key)
        if pf is None:
            known = ", ".join(sorted(_PLAN_FIELD_BY_KEY))
            raise ConfigError(f"plans.{name}.{key}: unknown plan setting (known: {known})")
        try:
            parsed = pf.parse(value)
        except ValueError as exc:
            raise ConfigError(f"plans.{name}.{key}: {exc}") from None
        if isinstance(parsed, int | float) and not isinstance(parsed, bool) and parsed < 0:
            raise ConfigError(f"plans.{name}.{key}: must not be negative")
        changes[pf.attr] = parsed
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
    host: str = setting("server", "127.0.0.1", parse_str,
                        "listen address; 0.0.0.0 to listen on every interface")
    port: int = setting("server", 8787, parse_int, "listen port", check=_port)
    public_url: str | None = setting(
        "server", None, parse_optional_str,
        "base of every absolute URL the API returns (download, upload and share links); when "
        "unset it is derived from each request (X-Forwarded-Proto/-Host honoured only from "
        "trusted_proxies)", check=_http_url)
    workers: int = setting("server", default_workers(), parse_int,
                           f"worker processes: one per CPU core by default (at most "
                           f"{MAX_DEFAULT_WORKERS}), 1 = a single process (rate limits and "
                           "/metrics shared; failed-auth limit per process)", check=_at_least(1))
    trusted_proxies: tuple[str, ...] = setting(
        "server", (), parse_list, "addresses/CIDRs whose X-Forwarded-* headers are believed")
    cors_origins: tuple[str, ...] = setting(
        "server", (), parse_list, "origins allowed to fetch signed URLs and links from a browser")
    shutdown_timeout: float = setting("server", 30.0, parse_float,
                                      "seconds in-flight requests get to finish on SIGTERM",
                                      check=_positive)
    request_timeout: float = setting("server", 60.0, parse_float,
                                     "seconds to receive a request's headers", check=_positive)
    response_timeout: float = setting("server", 3600.0, parse_float,
                                      "seconds a request may take end to end (large uploads!)",
                                      check=_positive)
    body_idle_timeout: float = setting(
        "server", 30.0, parse_float,
        "an upload body that makes no progress for this many seconds is cut off with 408 and "
        "leaves nothing (a stalled client, or one upload URL used to pin the server's memory)",
        check=_positive)
    upload_memory_bytes: int = setting(
        "server", 256 * 10**6, parse_size,
        "memory in-flight upload bodies may hold in one server process; past it new uploads get "
        "503 with Retry-After", key="upload_memory")
    upload_memory_per_tenant_bytes: int = setting(
        "server", 64 * 10**6, parse_size, "... of which one tenant may hold at most this",
        key="upload_memory_per_tenant")
    keep_alive_timeout: float = setting("server", 15.0, parse_float,
                                        "seconds an idle keep-alive connection stays open",
                                        check=_positive)
    sendfile: bool = setting("server", True, parse_bool,
                             "downloads go disk -> socket with zero-copy sendfile; false = 1 MiB "
                             "reads")
    # [storage]
    data_dir: str = setting("storage", "./artifacta-data", parse_str,
                            "database, blobs, secret; relative to the config file when set there")
    min_free_bytes: int = setting("storage", 100 * 10**6, parse_size,
                                  "uploads answer 503 when free disk space would drop below this")
    durability: str = setting(
        "storage", "full", parse_str,
        "'full': an acknowledged write is on disk (fsync at every commit); 'relaxed': "
        "survives a crash of the process, a power loss may lose the last commits (never a row "
        "without its bytes)", check=_one_of("full", "relaxed", quoted=True))
    inline_max_bytes: int = setting(
        "storage", 32 * 1024, parse_size,
        "bodies up to this size are kept inside the database, written in the same commit as "
        "their row (no file, no fsync of their own); 0 = every body is a file or an object. "
        "Lowering it leaves the blobs already inline where they are",
        check=lambda v: None if 0 <= v <= INLINE_MAX_LIMIT
        else f"must be 0-{INLINE_MAX_LIMIT} bytes (1 MiB), got {v}")
    ballast_bytes: int = setting(
        "storage", 8 * 1024 * 1024, parse_size,
        "preallocated file in the data directory, released when the disk is full so deletes "
        "and gc can still write; 0 = none")
    storage_backend: str = setting(
        "storage", "local", parse_str,
        "where new blobs go: 'local' (files in the data directory) or 's3' (the [s3] bucket); "
        "blobs already stored stay where their rows say", key="backend",
        check=_one_of("local", "s3", quoted=True))
    # [s3] (used with storage.backend = "s3"; checked by S3Settings.build)
    s3_endpoint: str | None = setting(
        "s3", None, parse_optional_str, "the S3 API the box talks to, e.g. http://127.0.0.1:8333",
        key="endpoint")
    s3_region: str | None = setting("s3", None, parse_optional_str,
                                    "signing region (else AWS_REGION, else us-east-1)",
                                    key="region")
    s3_bucket: str | None = setting("s3", None, parse_optional_str, "the bucket (must exist)",
                                    key="bucket")
    s3_prefix: str | None = setting("s3", None, parse_optional_str,
                                    "key prefix inside the bucket, e.g. 'box1/'", key="prefix")
    s3_access_key_id: str | None = setting(
        "s3", None, parse_optional_str, "access key (else AWS_ACCESS_KEY_ID)",
        key="access_key_id")
    s3_secret_access_key: str | None = setting(
        "s3", None, parse_optional_str, "secret key (else AWS_SECRET_ACCESS_KEY)",
        key="secret_access_key", secret=True)
    s3_public_endpoint: str | None = setting(
        "s3", None, parse_optional_str,
        "the S3 endpoint clients reach, for redirects and presigned uploads, when it differs "
        "from endpoint", key="public_endpoint")
    s3_downloads: str = setting(
        "s3", "proxy", parse_str,
        "'proxy': the box streams the bytes; 'redirect': /d/ and /l/ answer 302 to a "
        "presigned S3 URL (60-300 s) for bodies of at least redirect_min_bytes",
        key="downloads", check=_one_of("proxy", "redirect", quoted=True))
    s3_redirect_min_bytes: int = setting(
        "s3", 1024 * 1024, parse_size, "smaller bodies are always proxied in redirect mode",
        key="redirect_min_bytes")
    s3_direct_uploads: bool = setting(
        "s3", True, parse_bool,
        "whether upload-url may hand out presigned S3 PUT URLs when the store passes the "
        "start-up probe; false: presigned uploads go through the box's own /u/ URLs",
        key="direct_uploads")
    # [security]
    secret_key: str | None = setting(
        "security", None, parse_optional_str,
        f"HMAC secret for signed URLs and cursors (at least {MIN_SECRET_KEY} characters); when "
        "unset it is generated on first start into <data_dir>/secret.key (mode 0600); changing "
        "it invalidates every outstanding signed URL and cursor", secret=True, check=_secret_key)
    max_signed_url_seconds: int = setting("security", 7 * 86400, parse_duration,
                                          "cap on the lifetime of any signed download URL",
                                          check=_at_least(1, "s"))
    upload_url_seconds: int = setting("security", 3600, parse_duration,
                                      "lifetime of a presigned upload URL", check=_at_least(1, "s"))
    failed_auth_limit: int = setting("security", 20, parse_int,
                                     "failed authentications allowed per client address ...",
                                     check=_at_least(1))
    failed_auth_window_seconds: int = setting(
        "security", 60, parse_duration,
        "... per this sliding window; failures past it get 429 (a correct key always passes)",
        key="failed_auth_window")
    # [retention]
    deleted_retention_seconds: int = setting(
        "retention", 30 * 86400, parse_duration,
        "deleted/expired artifacts are purged (404) after this", key="deleted")
    pending_grace_seconds: int = setting(
        "retention", 3600, parse_duration,
        "unfinished presigned uploads are removed this long after their URL expires",
        key="pending_grace")
    orphan_grace_seconds: int = setting(
        "retention", 3600, parse_duration, "unreferenced blobs are deleted only after this long",
        key="orphan_grace")
    idempotency_seconds: int = setting(
        "retention", 86400, parse_duration, "how long an Idempotency-Key is remembered",
        key="idempotency")
    gc_interval_seconds: int = setting(
        "retention", 300, parse_duration, "how often the server runs lifecycle work by itself",
        key="gc_interval", check=_at_least(1, "s"))
    # [logging]
    log_level: str = setting("logging", "INFO", parse_str, "DEBUG, INFO, WARNING or ERROR",
                             key="level", check=_one_of("DEBUG", "INFO", "WARNING", "ERROR",
                                                        fold=True))
    access_log: bool = setting("logging", True, parse_bool, "one line per request")
    log_format: str = setting("logging", "text", parse_str, "'text' or 'json' (JSON lines)",
                              key="format", check=_one_of("text", "json", quoted=True))
    # [metrics]
    metrics_token: str | None = setting(
        "metrics", None, parse_optional_str,
        'when set, GET /metrics needs "Authorization: Bearer <token>"', key="token", secret=True)
    metrics_gauge_interval_seconds: int = setting(
        "metrics", 15, parse_duration,
        "store gauges (artifacts by state, blobs, bytes) are recomputed in the background at "
        "most this often; a scrape reads the last figures", key="gauge_interval",
        check=_at_least(1, "s"))
    metrics_scrape_rate: float = setting("metrics", 1.0, parse_float,
                                         "scrapes per second the whole server answers ...",
                                         key="scrape_rate", check=_positive)
    metrics_scrape_burst: int = setting("metrics", 10, parse_int,
                                        "... with bursts of this many; then 429 with Retry-After",
                                        key="scrape_burst", check=_at_least(1))
    # [tenants]
    default_plan: str = setting("tenants", "selfhosted", parse_str,
                                "plan of new tenants (including the bootstrap tenant 'default')")
    upgrade_url: str | None = setting("tenants", None, parse_optional_str,
                                      "added to quota_exceeded errors when set")
    # [console]
    console_enabled: bool = setting(
        "console", True, parse_bool,
        "the web console at /console/ (sign in with an API key; GET / sends browsers there); "
        "false: API only", key="enabled")
    # [plans.*]
    plans: dict[str, Plan] = field(default_factory=lambda: dict(BUILTIN_PLANS))
    # where the file came from, for `config show`
    config_file: str | None = None
    # the [s3] section validated (with the AWS_* fallbacks), when storage.backend = "s3"
    s3: S3Settings | None = field(default=None, compare=False, repr=False)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    def plan(self, name: str) -> Plan:
        """The named plan; an unknown name (plan removed from the file) falls back to the default."""
        return self.plans.get(name) or self.plans[self.default_plan]


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _settings_table() -> tuple[Setting, ...]:
    out = []
    for f in fields(Settings):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        assert f.default is not MISSING, f.name
        out.append(Setting(attr=f.name, section=spec["section"], key=spec["key"] or f.name,
                           parse=spec["parse"], default=f.default, help=spec["help"],
                           secret=spec["secret"], check=spec["check"]))
    return tuple(out)


# Every setting, in file order (the order of the Settings fields).
SETTINGS: tuple[Setting, ...] = _settings_table()
SETTING_OF: dict[str, Setting] = {s.attr: s for s in SETTINGS}  # by Settings attribute
_SETTING_BY_KEY: dict[tuple[str, str], Setting] = {(s.section, s.key): s for s in SETTINGS}
_SETTING_BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SETTINGS))


def _validate(s: Settings) -> None:
    for spec in SETTINGS:
        if spec.check is not None and (problem := spec.check(getattr(s, spec.attr))):
            raise ConfigError(f"{spec.name}: {problem}")
    if s.default_plan not in s.plans:
        raise ConfigError(
            f"tenants.default_plan: no plan named {s.default_plan!r} "
            f"(defined: {', '.join(sorted(s.plans))})"
        )


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
                    if not PLAN_NAME_RE.fullmatch(name):
                        raise ConfigError(f"plans.{name}: plan names are lowercase letters, digits, - and _")
                    base = BUILTIN_PLANS.get(name, Plan(name=name))
                    plans[name] = _build_plan(name, raw, base)
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{section}: expected a [{section}] table")
            for key, value in table.items():
                spec = _SETTING_BY_KEY.get((section, key))
                if spec is None:
                    raise ConfigError(f"{section}.{key}: unknown setting")
                try:
                    values[spec.attr] = spec.parse(value)
                except ValueError as exc:
                    raise ConfigError(f"{spec.name}: {exc}") from None
        # A relative data_dir in a file is relative to the file, not to the working directory.
        if "data_dir" in values and not os.path.isabs(os.path.expanduser(values["data_dir"])):
            values["data_dir"] = str(Path(path).resolve().parent / values["data_dir"])

    for name, raw_value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        spec = _SETTING_BY_ENV.get(name)
        if spec is None:
            continue  # other tools may share the prefix; only known names are read
        try:
            values[spec.attr] = spec.parse(raw_value)
        except ValueError as exc:
            raise ConfigError(f"{spec.name} (from {name}): {exc}") from None

    for attr, value in (overrides or {}).items():
        if value is not None:
            values[attr] = value

    if values.get("public_url"):
        values["public_url"] = values["public_url"].rstrip("/")
    settings = Settings(plans=plans, config_file=str(path) if path else None, **values)
    _validate(settings)
    if settings.storage_backend == "s3":
        try:
            s3 = S3Settings.build({spec.key: getattr(settings, spec.attr)
                                   for spec in SETTINGS if spec.section == "s3"}, env)
        except S3SettingsError as exc:
            raise ConfigError(str(exc)) from None
        settings = replace(settings, s3=s3)
    return settings


def unknown_env_vars(environ: dict[str, str], also_known: tuple[str, ...] = ()) -> list[str]:
    """`ARTIFACTA_BOX_*` variables that name no setting (a typo is otherwise ignored in
    silence), each with the closest known name when there is one: for a warning at start."""
    import difflib

    known = {spec.env for spec in SETTINGS}
    known |= {CONFIG_ENV, *also_known}
    out = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            out.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return out


# --------------------------------------------------------------------------- config show

MASK = "********"


def _file_value(parse: Callable[[Any], Any], value: Any) -> Any:
    """A parsed value as the file writes it; `parse` reads it back to the same value."""
    if value is None:
        return None
    if parse is parse_duration:
        return format_duration(value) if value > 0 else 0
    if parse is parse_size:
        return format_size(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _plan_table(plan: Plan) -> dict[str, Any]:
    return {pf.key: _file_value(pf.parse, getattr(plan, pf.attr)) for pf in PLAN_FIELDS}


def effective_config(settings: Settings, mask_secrets: bool = True) -> dict[str, Any]:
    """The effective configuration in the config file's own shape (sections, keys, value forms):
    what `config show --json` prints. Unset values are None; set secrets are masked."""
    out: dict[str, Any] = {section: {} for section in SECTIONS}
    for spec in SETTINGS:
        value = getattr(settings, spec.attr)
        if spec.attr == "data_dir":  # absolute, so the output means the same from anywhere
            value = os.path.abspath(os.path.expanduser(value))
        if mask_secrets and spec.secret and value:
            value = MASK
        out[spec.section][spec.key] = _file_value(spec.parse, value)
    # built-in plans first, then the file's, as loaded
    out["plans"] = {name: _plan_table(plan) for name, plan in settings.plans.items()}
    out["config_file"] = settings.config_file
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # ASCII-only JSON strings are valid TOML basic strings
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def config_toml(settings: Settings, show_secrets: bool = False) -> str:
    """The effective configuration as TOML that `--config` reads back to the same Settings.

    Unset settings and masked secrets are comments, so the output loads as it is."""
    shown = effective_config(settings, mask_secrets=not show_secrets)
    source = settings.config_file or "no file (built-in defaults, environment, flags)"
    lines = [
        "# Effective configuration of artifacta-box (`artifacta-box config show`).",
        f"# Read from: {source}.",
        "# Every value is the one in force; pass this file to --config to run with exactly these.",
    ]
    by_section: dict[str, list[Setting]] = {}
    for spec in SETTINGS:
        by_section.setdefault(spec.section, []).append(spec)
    for section, specs in by_section.items():
        lines += ["", f"[{section}]"]
        for spec in specs:
            value = shown[section][spec.key]
            lines += textwrap.wrap(spec.help, width=98, initial_indent="# ",
                                   subsequent_indent="# ")
            if value is None:
                lines.append(f"# {spec.key} =   (unset)")
            elif value == MASK and spec.secret:
                lines.append(f"# {spec.key} = {_toml_value(MASK)}   (set; --show-secrets prints it)")
            else:
                lines.append(f"{spec.key} = {_toml_value(value)}")
    for i, (name, table) in enumerate(shown["plans"].items()):
        lines += ["", f"[plans.{name}]"]
        for pf in PLAN_FIELDS:
            comment = f"   # {pf.help}" if i == 0 else ""
            lines.append(f"{pf.key} = {_toml_value(table[pf.key])}{comment}")
    return "\n".join(lines) + "\n"
