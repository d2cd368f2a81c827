"""The `artifacta-box` command: the server and the admin tools, in one click group.

Admin commands open the data directory directly (no HTTP) and are safe while `serve` runs:
SQLite serialises writers, and the server re-reads keys and tenants on every request.
Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from artifacta_box import __version__, errors, orphans
from artifacta_box.config import (
    SETTING_OF,
    ConfigError,
    Settings,
    config_toml,
    effective_config,
    load_settings,
    unknown_env_vars,
)
from artifacta_box.context import Box
from artifacta_box.datadir import TEST_FREE_BYTES_ENV, UMASK, DataDirError

EXIT_ERROR = 1
EXIT_CONFIG = 2


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def flag_help(attr: str, text: str) -> str:
    """A flag's help, ending with the default and the environment variable of its setting."""
    spec = SETTING_OF[attr]
    return f"{text} (default {spec.default}, or ${spec.env})."


def settings_options(fn: Callable) -> Callable:
    """--config and --data-dir, shared by every command that touches a data directory."""

    @click.option(
        "--config", "config_file", type=click.Path(dir_okay=False),
        help="TOML config file (default: $ARTIFACTA_BOX_CONFIG).",
    )
    @click.option(
        "--data-dir", type=click.Path(file_okay=False),
        help=flag_help("data_dir", "Data directory: database, blobs, secret")
        + " Only serve and restore create one.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, config_file: str | None, data_dir: str | None, **kwargs: Any) -> Any:
        settings = load_cli_settings(config_file, {"data_dir": data_dir})
        return fn(settings, *args, **kwargs)

    return wrapper


# ARTIFACTA_BOX_* names that are not settings but are expected: the test hook, and the database
# path packaging/litestream.yml reads (the Litestream unit sets it for the server's process too).
EXPECTED_ENV = (TEST_FREE_BYTES_ENV, "ARTIFACTA_BOX_DB")


def load_cli_settings(config_file: str | None, overrides: dict[str, Any]) -> Settings:
    for name in unknown_env_vars(dict(os.environ), also_known=EXPECTED_ENV):
        click.echo(f"warning: ignoring environment variable {name}: no such setting", err=True)
    try:
        return load_settings(config_file, overrides)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
        raise  # unreachable


def run_admin(settings: Settings, action: Callable[[Box], Any]) -> Any:
    """Open the box on the data directory, run `action(box)`, close it; map errors to one line.
    On success, say on stderr which data directory it was (stdout stays the command's own)."""

    async def _run() -> Any:
        async with Box.opened(settings) as box:
            return await action(box)

    try:
        result = asyncio.run(_run())
        say_data_dir(settings)
        return result
    except errors.ApiError as exc:
        fail(exc.message)
    except (DataDirError, ConfigError) as exc:
        fail(str(exc), EXIT_CONFIG)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))


def say_data_dir(settings: Settings) -> None:
    click.echo(f"data directory: {settings.data_path}", err=True)


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
    the --config TOML file > built-in defaults (see config.example.toml). Only `serve` (and
    `restore`, into a new directory) creates a data directory; every other command refuses a
    directory that holds no box, and says on stderr which data directory it used. Everything
    the box writes is readable by its own user only (umask 077).
    """
    os.umask(UMASK)
    orphans.die_with_bootloader()


@main.command()
def version() -> None:
    """Print the version of artifacta-box and of its bundled SQLite."""
    import sqlite3

    import sanic

    click.echo(f"artifacta-box {__version__} (sanic {sanic.__version__}, sqlite {sqlite3.sqlite_version})")


# ============================================================================ serve


@main.command()
@click.option("--host", help=flag_help("host", "Address to listen on")
              + " 0.0.0.0 is every IPv4 address: then protect /metrics with [metrics] token.")
@click.option("--port", type=int, help=flag_help("port", "Port to listen on"))
@click.option("--public-url", help="Base of every URL the API returns, e.g. https://box.example.com "
              f"(default: derived from each request, or ${SETTING_OF['public_url'].env}).")
@click.option("--workers", type=int, help=flag_help("workers", "Worker processes"))
@click.option("--no-bootstrap", is_flag=True, help="Do not create tenant 'default' and a key on a fresh box.")
@settings_options
def serve(settings: Settings, host: str | None, port: int | None, public_url: str | None,
          workers: int | None, no_bootstrap: bool) -> None:
    """Run the API server (graceful on SIGTERM/SIGINT).

    Binds the port first: a port in use or an unknown host is one line and exit 2, before
    anything is created. Then it creates the data directory if there is none, locks it (one
    server per directory; with --workers N every worker holds the lock too, and workers stop
    when their main process dies), makes its files private, bootstraps tenant 'default' on a
    new box and prints the address it listens on.
    """
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
    except (DataDirError, ConfigError, server.ListenError) as exc:
        fail(str(exc), EXIT_CONFIG)


# ============================================================================ tenants


@main.group()
def tenants() -> None:
    """Create and manage tenants (each has its own artifacts, keys, plan and usage)."""


@tenants.command("create")
@click.argument("name")
@click.option("--plan", help="Plan name from the config (default: tenants.default_plan; "
              "an empty name is an error).")
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
    """Suspend tenant NAME: its keys are refused (401) until it is resumed. Suspending a
    suspended tenant changes nothing (and writes no audit entry)."""
    from artifacta_box.services import tenants as svc

    result = run_admin(settings, lambda box: svc.set_suspended(box, name, True))
    click.echo(f"Tenant {name} is suspended." if result["changed"]
               else f"Tenant {name} was already suspended; nothing changed.")


@tenants.command("resume")
@click.argument("name")
@settings_options
def tenants_resume(settings: Settings, name: str) -> None:
    """Resume a suspended tenant NAME."""
    from artifacta_box.services import tenants as svc

    result = run_admin(settings, lambda box: svc.set_suspended(box, name, False))
    click.echo(f"Tenant {name} is active again." if result["changed"]
               else f"Tenant {name} was not suspended; nothing changed.")


# ============================================================================ keys


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant the key belongs to.")
@click.option("--name", help="A label for the key (e.g. the agent or pipeline using it).")
@click.option("--export", "as_export", is_flag=True,
              help="Print `export ARTIFACTA_API_KEY=...` and `export ARTIFACTA_API_URL=...` lines "
              "for a shell (the URL: server.public_url, else server.host and server.port).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def keys_create(settings: Settings, tenant: str, name: str | None, as_export: bool,
                as_json: bool) -> None:
    """Create a key for TENANT. The full key is printed once and never stored.

    \b
    Into the current shell:  eval "$(artifacta-box keys create --tenant T --export)"
    """
    from artifacta_box.client_env import api_url, export_lines
    from artifacta_box.services import tenants as svc

    if as_export and as_json:
        fail("--export and --json print the key differently; choose one", EXIT_CONFIG)
    result = run_admin(settings, lambda box: svc.create_key(box, tenant, name))
    if as_json:
        print_json(result)
        return
    click.echo(export_lines(result["key"], api_url(settings)) if as_export else result["key"])
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


# ============================================================================ operations


def _gc_lines(r: dict[str, Any]) -> list[str]:
    verb = "would" if r["dry_run"] else "did"
    lines = [
        f"expired artifacts:           {r['expired']:,}",
        f"purged artifacts:            {r['purged_artifacts']:,}",
        f"removed stale uploads:       {r['purged_pending']:,}",
        f"deleted blobs:               {r['deleted_blobs']:,} "
        f"({r['orphan_files']:,} without a row)",
        f"reclaimed bytes:             {r['reclaimed_bytes']:,}",
        f"dropped links:               {r['dropped_links']:,}",
        f"expired idempotency keys:    {r['idempotency_keys']:,}",
        f"removed temp files:          {r['temp_files']:,} ({r['temp_bytes']:,} bytes)",
    ]
    if r.get("aborted_uploads"):
        lines.append(f"aborted incomplete uploads:  {r['aborted_uploads']:,}")
    head = "gc dry run: nothing was changed; a run now would do this:" if verb == "would" else (
        "gc finished:")
    return [head] + ["  " + line for line in lines]


@main.command()
@click.option("--dry-run", is_flag=True, help="Report what a run would do; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def gc(settings: Settings, dry_run: bool, as_json: bool) -> None:
    """Expire, purge past retention, drop stale uploads, delete unreferenced blobs and temp files.

    Safe while the server runs (it also runs this every [retention] gc_interval): beside a
    running server only temp files older than the orphan grace are removed.
    """
    from artifacta_box.services import lifecycle

    async def action(box: Box) -> dict[str, Any]:
        running = lifecycle.server_is_running(box)
        temp_age = None if running else 0.0
        report = await lifecycle.run_gc(box, dry_run=dry_run, temp_min_age=temp_age, actor="cli")
        return report.as_dict()

    result = run_admin(settings, action)
    if as_json:
        print_json(result)
        return
    for line in _gc_lines(result):
        click.echo(line)


class ProgressBar:
    """services.progress.Progress as a click progress bar on stderr (a label line when stderr
    is not a terminal), so stdout stays clean for --json."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total: int, label: str) -> None:
        self._bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr,
                                      show_pos=False, show_percent=True, show_eta=True)
        self._bar.__enter__()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@main.command()
@click.option("--repair", is_flag=True,
              help="Fix counters, missing blob rows, orphans and temp leftovers "
              "(never deletes a referenced blob).")
@click.option("--verify", is_flag=True,
              help="Also rehash the blobs stored in S3 by streaming them back (local blobs are "
              "always hashed; S3 objects are otherwise compared by size).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def check(settings: Settings, repair: bool, verify: bool, as_json: bool) -> None:
    """Verify the store: every referenced blob present with the right size and SHA-256, blob
    and usage counters right, no orphans or temp leftovers. Exits 1 on any unrepaired problem.
    """
    from artifacta_box.services.check import check_store

    report = run_admin(settings, lambda box: check_store(box, repair=repair,
                                                         progress=ProgressBar(), verify=verify))
    result = report.as_dict()
    if as_json:
        print_json(result)
    else:
        click.echo(
            f"checked {result['blob_rows']:,} blob rows, verified {result['blobs_verified']:,} "
            f"blobs ({result['bytes_verified']:,} bytes), {result['files_on_disk']:,} files on "
            f"disk, {result['tenants']:,} tenants"
        )
        if result["recent_orphans"] or result["recent_temp_files"]:
            click.echo(
                f"ignored as possibly in flight: {result['recent_orphans']:,} recent files "
                f"without a row, {result['recent_temp_files']:,} recent temp files"
            )
        for p in report.problems:
            state = "repaired" if p.repaired else "PROBLEM"
            click.echo(f"{state}: [{p.kind}] {p.detail}")
        if report.ok:
            fixed = len(report.problems)
            click.echo(f"OK: {fixed} problem(s) repaired." if fixed else "OK: no problems found.")
        else:
            hint = "" if repair else " Run with --repair to fix counters, orphans and leftovers."
            click.echo(f"FAILED: {len(report.unrepaired)} problem(s).{hint}")
    if not report.ok:
        sys.exit(EXIT_ERROR)


@main.command()
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--copy-objects", is_flag=True,
              help="Also copy the blobs stored in S3 into DEST (verified by their hash); "
              "without it DEST names them (objects.jsonl) and a restore needs the bucket.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def backup(settings: Settings, dest: str, copy_objects: bool, as_json: bool) -> None:
    """Back up the box into DEST (a new or empty directory), safely while the server runs:
    a consistent database snapshot, every local blob it references (and S3 blobs' keys, or
    with --copy-objects their bytes), the secret, a manifest."""
    from pathlib import Path

    from artifacta_box.services import backup as svc

    async def action(box: Box) -> dict[str, Any]:
        try:
            return await svc.backup(box, Path(dest), progress=ProgressBar(),
                                    copy_objects=copy_objects)
        except svc.BackupError as exc:
            raise errors.InvalidRequest(str(exc)) from None

    result = run_admin(settings, action)
    if as_json:
        print_json(result)
        return
    click.echo(
        f"Backed up {result['artifacts_active']:,} active artifacts of {result['tenants']:,} "
        f"tenants: {result['blobs']['count']:,} blobs ({result['blobs']['bytes']:,} bytes) "
        f"and the database into {result['destination']}."
    )


@main.command()
@click.argument("src", type=click.Path(file_okay=False, exists=True))
@click.option("--force", is_flag=True,
              help="Replace the box in a non-empty (stopped) data directory.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def restore(settings: Settings, src: str, force: bool, as_json: bool) -> None:
    """Restore the backup in SRC into the data directory (created if new). Refuses a
    directory any process of a server still runs on, and one holding a box unless --force;
    a restore that fails leaves the directory as it was (a new one is removed again)."""
    from pathlib import Path

    from artifacta_box.services import backup as svc

    try:
        result = asyncio.run(svc.restore(settings, Path(src), force=force, progress=ProgressBar()))
    except svc.BackupError as exc:
        fail(str(exc))
    except (DataDirError, ConfigError) as exc:
        fail(str(exc), EXIT_CONFIG)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))
    if as_json:
        print_json(result)
        return
    click.echo(
        f"Restored the backup of {result['backup_created_at']} into {result['data_dir']}: "
        f"{result['blobs']:,} blobs ({result['bytes']:,} bytes), "
        f"{result.get('artifacts_active', 0):,} active artifacts."
    )


@main.command()
@click.option("--tenant", help="Only entries about this tenant.")
@click.option("--action", help="Only this action (e.g. key.revoke), or group (e.g. key, tenant).")
@click.option("--since", help="Only entries at or after this date or date-time (UTC).")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def audit(settings: Settings, tenant: str | None, action: str | None, since: str | None,
          limit: int, as_json: bool) -> None:
    """Show the audit trail (newest first): key and tenant changes, deletes, seals, gc runs,
    repairs, backups and restores."""
    from artifacta_box.services.audit import query_audit
    from artifacta_box.services.tenants import require_tenant

    async def run(box: Box) -> list[dict[str, Any]]:
        if tenant is not None:
            await require_tenant(box, tenant)
        return await query_audit(box, tenant=tenant, action=action, since=since, limit=limit)

    rows = run_admin(settings, run)
    if as_json:
        print_json(rows)
        return
    print_table(
        [{**r, "details": json.dumps(r["details"], separators=(",", ":")) if r["details"] else ""}
         for r in rows],
        [("at", "AT"), ("actor", "ACTOR"), ("action", "ACTION"), ("tenant", "TENANT"),
         ("target", "TARGET"), ("details", "DETAILS")],
    )


# ============================================================================ artifacts


@main.group()
def artifacts() -> None:
    """Recover deleted artifacts while retention.deleted (30 days) keeps their bytes."""


@artifacts.command("list")
@click.option("--deleted", is_flag=True,
              help="Deleted artifacts that can still be restored (required: live artifacts are "
              "listed through the API, e.g. `artifacta ls` with the tenant's key).")
@click.option("--tenant", help="Only this tenant's artifacts.")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def artifacts_list(settings: Settings, deleted: bool, tenant: str | None, limit: int,
                   as_json: bool) -> None:
    """List deleted artifacts, newest delete first, with the time gc may purge each."""
    from artifacta_box.services.recovery import list_deleted

    if not deleted:
        fail("artifacts list shows deleted artifacts: pass --deleted (live artifacts are "
             "listed through the API, e.g. `artifacta ls` with the tenant's key)", EXIT_CONFIG)
    rows = run_admin(settings, lambda box: list_deleted(box, tenant=tenant, limit=limit))
    if as_json:
        print_json(rows)
        return
    print_table(rows, [("artifact_id", "ARTIFACT ID"), ("tenant", "TENANT"),
                       ("filename", "FILENAME"), ("size_bytes", "BYTES"),
                       ("deleted_at", "DELETED"), ("purge_after", "PURGED AFTER")])


@artifacts.command("restore")
@click.argument("artifact_id")
@click.option("--ttl", help="A new lifetime from now (e.g. 7d, or never); needed when the "
              "artifact's expiry passed while it was deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def artifacts_restore(settings: Settings, artifact_id: str, ttl: str | None, as_json: bool) -> None:
    """Undelete ARTIFACT_ID within retention.deleted: same id, metadata, session and expiry;
    its unexpired links work again. The tenant is charged for its bytes again (unless it holds
    the same content in a live artifact) and refused if that exceeds its plan. Audited."""
    from artifacta_box.services.recovery import restore_artifact

    result = run_admin(settings, lambda box: restore_artifact(box, artifact_id, ttl=ttl))
    if as_json:
        print_json(result)
        return
    expiry = result["expires_at"] or "never"
    click.echo(
        f"Restored {result['artifact_id']} ({result['filename']}, {result['size_bytes']:,} bytes) "
        f"of tenant {result['tenant']}: {result['billed_bytes']:,} bytes charged again; "
        f"expires {expiry}."
    )


# ============================================================================ config


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--show-secrets", is_flag=True, help="Print secrets instead of masking them.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (the same sections and keys, plus config_file) instead of TOML.")
@settings_options
def config_show(settings: Settings, show_secrets: bool, as_json: bool) -> None:
    """Print the effective configuration (file < environment < flags) as TOML.

    The output is a config file: `--config` reads it back to the same settings. Unset
    settings and masked secrets are comments; with --show-secrets it carries the secrets too."""
    if as_json:
        print_json(effective_config(settings, mask_secrets=not show_secrets))
    else:
        click.echo(config_toml(settings, show_secrets=show_secrets), nl=False)


def setup_logging(settings: Settings) -> None:
    from artifacta_box.logs import configure

    configure(settings)


if __name__ == "__main__":  # pragma: no cover
    main()
