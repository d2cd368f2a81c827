"""The `artifacta-box` command: the server and the admin tools, in one click group.

Admin commands open the data directory directly (no HTTP) and are safe while `serve` runs:
SQLite serialises writers, and the server re-reads keys and tenants on every request.
Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from artifacta_box import __version__, errors
from artifacta_box.config import ConfigError, Settings, effective_config, load_settings
from artifacta_box.context import Box, DataDirError

EXIT_ERROR = 1
EXIT_CONFIG = 2


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def settings_options(fn: Callable) -> Callable:
    """--config and --data-dir, shared by every command that touches a data directory."""

    @click.option(
        "--config", "config_file", type=click.Path(dir_okay=False),
        help="TOML config file (default: $ARTIFACTA_BOX_CONFIG).",
    )
    @click.option(
        "--data-dir", type=click.Path(file_okay=False),
        help="Data directory: database, blobs, secret (default ./artifacta-data, "
        "or $ARTIFACTA_BOX_STORAGE_DATA_DIR).",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, config_file: str | None, data_dir: str | None, **kwargs: Any) -> Any:
        settings = load_cli_settings(config_file, {"data_dir": data_dir})
        return fn(settings, *args, **kwargs)

    return wrapper


def load_cli_settings(config_file: str | None, overrides: dict[str, Any]) -> Settings:
    try:
        return load_settings(config_file, overrides)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
        raise  # unreachable


def run_admin(settings: Settings, action: Callable[[Box], Any]) -> Any:
    """Open the box on the data directory, run `action(box)`, close it; map errors to one line."""

    async def _run() -> Any:
        box = Box(settings)
        await box.open()
        try:
            return await action(box)
        finally:
            await box.close()

    try:
        return asyncio.run(_run())
    except errors.ApiError as exc:
        fail(exc.message)
    except (DataDirError, ConfigError) as exc:
        fail(str(exc), EXIT_CONFIG)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def print_table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """A plain aligned table; `columns` is [(key, header)]."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    headers = [h for _, h in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ============================================================================ root


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="artifacta-box")
def main() -> None:
    """Artifacta Box: the Artifacta v1 artifact-store API as one self-hosted executable.

    \b
    Start a server on ./artifacta-data (creates tenant 'default' and prints a key):
      artifacta-box serve
    Then point the official clients at it:
      export ARTIFACTA_API_URL=http://127.0.0.1:8787 ARTIFACTA_API_KEY=ak_live_...
      artifacta whoami

    Settings come from flags > ARTIFACTA_BOX_<SECTION>_<KEY> environment variables >
    the --config TOML file > built-in defaults (see config.example.toml).
    """


@main.command()
def version() -> None:
    """Print the version of artifacta-box and of its bundled SQLite."""
    import sqlite3

    import sanic

    click.echo(f"artifacta-box {__version__} (sanic {sanic.__version__}, sqlite {sqlite3.sqlite_version})")


# ============================================================================ serve


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8787).")
@click.option("--public-url", help="Base of every URL the API returns, e.g. https://box.example.com.")
@click.option("--workers", type=int, help="Worker processes (default 1).")
@click.option("--no-bootstrap", is_flag=True, help="Do not create tenant 'default' and a key on a fresh box.")
@settings_options
def serve(settings: Settings, host: str | None, port: int | None, public_url: str | None,
          workers: int | None, no_bootstrap: bool) -> None:
    """Run the API server (graceful on SIGTERM/SIGINT)."""
    from artifacta_box import server

    try:
        settings = load_settings(
            settings.config_file,
            {"data_dir": settings.data_dir, "host": host, "port": port,
             "public_url": public_url, "workers": workers},
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    try:
        sys.exit(server.serve(settings, bootstrap=not no_bootstrap))
    except (DataDirError, ConfigError) as exc:
        fail(str(exc), EXIT_CONFIG)


# ============================================================================ tenants


@main.group()
def tenants() -> None:
    """Create and manage tenants (each has its own artifacts, keys, plan and usage)."""


@tenants.command("create")
@click.argument("name")
@click.option("--plan", help="Plan name from the config (default: tenants.default_plan).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def tenants_create(settings: Settings, name: str, plan: str | None, as_json: bool) -> None:
    """Create tenant NAME."""
    from artifacta_box.services import tenants as svc

    result = run_admin(settings, lambda box: svc.create_tenant(box, name, plan))
    if as_json:
        print_json(result)
    else:
        click.echo(f"Created tenant {result['name']} on plan {result['plan']}.")
        click.echo(f"Make it a key with: artifacta-box keys create --tenant {result['name']}", err=True)


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def tenants_list(settings: Settings, as_json: bool) -> None:
    """List tenants with their plan and usage."""
    from artifacta_box.services import tenants as svc

    rows = run_admin(settings, svc.list_tenants)
    if as_json:
        print_json(rows)
        return
    print_table(rows, [("name", "NAME"), ("plan", "PLAN"), ("suspended", "SUSPENDED"),
                       ("artifacts", "ARTIFACTS"), ("storage_bytes", "STORAGE BYTES"),
                       ("requests_month", "REQUESTS THIS MONTH"), ("active_keys", "KEYS"),
                       ("created_at", "CREATED")])


@tenants.command("set-plan")
@click.argument("name")
@click.argument("plan")
@settings_options
def tenants_set_plan(settings: Settings, name: str, plan: str) -> None:
    """Put tenant NAME on PLAN."""
    from artifacta_box.services import tenants as svc

    run_admin(settings, lambda box: svc.set_plan(box, name, plan))
    click.echo(f"Tenant {name} is now on plan {plan}.")


@tenants.command("suspend")
@click.argument("name")
@settings_options
def tenants_suspend(settings: Settings, name: str) -> None:
    """Suspend tenant NAME: its keys are refused (401) until it is resumed."""
    from artifacta_box.services import tenants as svc

    run_admin(settings, lambda box: svc.set_suspended(box, name, True))
    click.echo(f"Tenant {name} is suspended.")


@tenants.command("resume")
@click.argument("name")
@settings_options
def tenants_resume(settings: Settings, name: str) -> None:
    """Resume a suspended tenant NAME."""
    from artifacta_box.services import tenants as svc

    run_admin(settings, lambda box: svc.set_suspended(box, name, False))
    click.echo(f"Tenant {name} is active again.")


# ============================================================================ keys


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant the key belongs to.")
@click.option("--name", help="A label for the key (e.g. the agent or pipeline using it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def keys_create(settings: Settings, tenant: str, name: str | None, as_json: bool) -> None:
    """Create a key for TENANT. The full key is printed once and never stored."""
    from artifacta_box.services import tenants as svc

    result = run_admin(settings, lambda box: svc.create_key(box, tenant, name))
    if as_json:
        print_json(result)
        return
    click.echo(result["key"])
    click.echo(
        f"Created key {result['key_id']} for tenant {tenant}. It is shown only now; store it safely.",
        err=True,
    )


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def keys_list(settings: Settings, tenant: str | None, as_json: bool) -> None:
    """List keys (never the keys themselves: id, name, last 4, dates)."""
    from artifacta_box.services import tenants as svc

    rows = run_admin(settings, lambda box: svc.list_keys(box, tenant))
    if as_json:
        print_json(rows)
        return
    print_table(rows, [("key_id", "KEY ID"), ("tenant", "TENANT"), ("name", "NAME"),
                       ("last4", "LAST 4"), ("created_at", "CREATED"),
                       ("last_used_at", "LAST USED"), ("revoked_at", "REVOKED")])


@keys.command("revoke")
@click.argument("key_id")
@settings_options
def keys_revoke(settings: Settings, key_id: str) -> None:
    """Revoke KEY_ID: refused from the very next request."""
    from artifacta_box.services import tenants as svc

    result = run_admin(settings, lambda box: svc.revoke_key(box, key_id))
    click.echo(f"Key {key_id} of tenant {result['tenant']} is revoked.")


# ============================================================================ config


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--show-secrets", is_flag=True, help="Do not mask secrets.")
@settings_options
def config_show(settings: Settings, show_secrets: bool) -> None:
    """Print the effective configuration as JSON (secrets masked)."""
    print_json(effective_config(settings, mask_secrets=not show_secrets))


def setup_logging(settings: Settings) -> None:
    from artifacta_box.logs import configure

    configure(settings)


if __name__ == "__main__":  # pragma: no cover
    main()
