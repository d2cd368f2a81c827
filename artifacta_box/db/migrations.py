"""Schema migrations keyed on PRAGMA user_version.

Each migration runs in its own transaction together with the bump of user_version, so running
`migrate` twice (or from two processes at once) is safe: the second run finds the version
already applied and does nothing.

Timestamps are stored as the API renders them (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), fixed width, so
text order is time order and comparisons and indexes work on the strings directly.
"""

from __future__ import annotations

import sqlite3

# Artifact `state`:
#   pending  reserved by upload-url, bytes not committed (content_hash NULL until complete)
#   active   committed; live while expires_at is NULL or in the future
#   expired  past expires_at and processed by the expiry sweep (usage already released)
#   deleted  soft-deleted (deleted_at set; usage released)
# Rows leave the table (purge) after the retention period; pending rows after their upload
# window plus grace.
#
# Usage accounting: blobs.live_refs counts artifacts in state `active` whose expiry has not
# been processed; tenants.storage_bytes is the sum of size_bytes over blobs with live_refs > 0.
# blobs.refs counts every row that references the blob (any state but pending); a blob file is
# deletable only when refs = 0 (and its grace has passed).

MIGRATIONS: list[str] = [
    # 1: the initial schema, designed for the access paths of the API's routes.
    """
    CREATE TABLE tenants (
        tenant_id      INTEGER PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        plan           TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        suspended_at   TEXT,
        storage_bytes  INTEGER NOT NULL DEFAULT 0,
        requests_month TEXT NOT NULL DEFAULT '',
        requests_count INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE api_keys (
        key_id       TEXT PRIMARY KEY,
        tenant_id    INTEGER NOT NULL REFERENCES tenants(tenant_id),
        key_hash     TEXT NOT NULL UNIQUE,
        name         TEXT,
        last4        TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at   TEXT
    );
    CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id, created_at);

    CREATE TABLE blobs (
        tenant_id       INTEGER NOT NULL,
        sha256          TEXT NOT NULL,
        size_bytes      INTEGER NOT NULL,
        refs            INTEGER NOT NULL DEFAULT 0,
        live_refs       INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL,
        unreferenced_at TEXT,
        PRIMARY KEY (tenant_id, sha256)
    ) WITHOUT ROWID;
    CREATE INDEX blobs_unreferenced ON blobs(unreferenced_at) WHERE refs = 0;

    CREATE TABLE artifacts (
        id                INTEGER PRIMARY KEY,
        artifact_id       TEXT NOT NULL UNIQUE,
        tenant_id         INTEGER NOT NULL,
        state             TEXT NOT NULL,
        filename          TEXT NOT NULL,
        content_type      TEXT NOT NULL,
        size_bytes        INTEGER NOT NULL,
        content_hash      TEXT,
        session_id        TEXT,
        agent_id          TEXT,
        metadata          TEXT NOT NULL DEFAULT '{}',
        created_at        TEXT NOT NULL,
        expires_at        TEXT,
        deleted_at        TEXT,
        expired_at        TEXT,
        upload_expires_at TEXT,
        upload_sha256     TEXT,
        upload_size       INTEGER
    );
    -- List paths: every filter has an index ordered like the v1 contract, restricted to the
    -- rows a list can return, so paging never scans the tenant.
    CREATE INDEX artifacts_list ON artifacts(tenant_id, created_at DESC, artifact_id DESC)
        WHERE state = 'active';
    CREATE INDEX artifacts_by_session ON artifacts(tenant_id, session_id, created_at DESC, artifact_id DESC)
        WHERE state = 'active';
    CREATE INDEX artifacts_by_agent ON artifacts(tenant_id, agent_id, created_at DESC, artifact_id DESC)
        WHERE state = 'active';
    CREATE INDEX artifacts_by_filename ON artifacts(tenant_id, filename, created_at DESC, artifact_id DESC)
        WHERE state = 'active';
    CREATE INDEX artifacts_by_type ON artifacts(tenant_id, content_type, created_at DESC, artifact_id DESC)
        WHERE state = 'active';
    -- Lifecycle paths: expiry sweep, retention purge, stale pending uploads, blob references.
    CREATE INDEX artifacts_expiring ON artifacts(expires_at) WHERE state = 'active' AND expires_at IS NOT NULL;
    CREATE INDEX artifacts_tenant_expiring ON artifacts(tenant_id, expires_at)
        WHERE state = 'active' AND expires_at IS NOT NULL;
    CREATE INDEX artifacts_deleted ON artifacts(deleted_at) WHERE state = 'deleted';
    CREATE INDEX artifacts_expired ON artifacts(expired_at) WHERE state = 'expired';
    CREATE INDEX artifacts_pending ON artifacts(upload_expires_at) WHERE state = 'pending';
    CREATE INDEX artifacts_by_blob ON artifacts(tenant_id, content_hash) WHERE content_hash IS NOT NULL;

    -- One row per (artifact, metadata key) for metadata filters: the index hands back ids in
    -- list order for one key=value; further filters are checked against the artifact row.
    CREATE TABLE artifact_metadata (
        tenant_id   INTEGER NOT NULL,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        artifact_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, key, value, created_at, artifact_id)
    ) WITHOUT ROWID;
    CREATE INDEX artifact_metadata_by_artifact ON artifact_metadata(artifact_id);

    CREATE TABLE sessions (
        tenant_id         INTEGER NOT NULL,
        session_id        TEXT NOT NULL,
        artifact_count    INTEGER NOT NULL DEFAULT 0,
        created_at        TEXT NOT NULL,
        first_artifact_at TEXT,
        last_artifact_at  TEXT,
        sealed_at         TEXT,
        PRIMARY KEY (tenant_id, session_id)
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_activity ON sessions(tenant_id, last_artifact_at DESC, session_id DESC);

    CREATE TABLE links (
        link_id     TEXT PRIMARY KEY,
        tenant_id   INTEGER NOT NULL,
        artifact_id TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE INDEX links_active ON links(tenant_id, expires_at) WHERE revoked_at IS NULL;
    CREATE INDEX links_by_artifact ON links(artifact_id);
    CREATE INDEX links_expiry ON links(expires_at);

    CREATE TABLE idempotency_keys (
        tenant_id    INTEGER NOT NULL,
        idem_key     TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        artifact_id  TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        PRIMARY KEY (tenant_id, idem_key, request_hash)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_age ON idempotency_keys(created_at);

    CREATE TABLE audit_log (
        id        INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        tenant    TEXT,
        target    TEXT,
        details   TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_by_time ON audit_log(at);

    -- Results of lifecycle runs, for metrics and `gc` history.
    CREATE TABLE gc_runs (
        id                 INTEGER PRIMARY KEY,
        started_at         TEXT NOT NULL,
        finished_at        TEXT,
        expired            INTEGER NOT NULL DEFAULT 0,
        purged_artifacts   INTEGER NOT NULL DEFAULT 0,
        purged_pending     INTEGER NOT NULL DEFAULT 0,
        deleted_blobs      INTEGER NOT NULL DEFAULT 0,
        reclaimed_bytes    INTEGER NOT NULL DEFAULT 0,
        dropped_links      INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: presigned uploads keep their received bytes in the blob store under `upload_sha256`
    # (no `blobs` row until complete). This index answers "does any row still point at these
    # bytes?" before a replaced or refused upload's blob file is removed, and lets gc skip them.
    """
    CREATE INDEX artifacts_by_upload ON artifacts(tenant_id, upload_sha256)
        WHERE upload_sha256 IS NOT NULL;
    """,
    # 3: where a blob's bytes live (storage/blobs.py): NULL = a local file at the content
    # address (every row written before: existing stores keep working, nothing moves),
    # 's3:<key>' = an S3 object, 'inline' = in SQLite. `upload_location` is where a pending
    # presigned upload's bytes are (NULL: the local content address of `upload_sha256`). ADD
    # COLUMN without a default rewrites no row. The indexes answer "which of these listed keys
    # has a row?" for check and gc (`location IN (...)`: a partial index whose condition is
    # only IS NOT NULL, which SQLite infers from IN; keys are 128 random bits, and 'inline'
    # rows share one value, so the index is not UNIQUE).
    """
    ALTER TABLE blobs ADD COLUMN location TEXT;
    ALTER TABLE artifacts ADD COLUMN upload_location TEXT;
    CREATE INDEX blobs_by_location ON blobs(location) WHERE location IS NOT NULL;
    CREATE INDEX artifacts_by_upload_location ON artifacts(upload_location)
        WHERE upload_location IS NOT NULL;
    """,
    # 4: artifact pages (services/pages.py). One row per publication: unpublishing stamps
    # `unpublished_at` and keeps the row, so the old URL answers 410; publishing again makes a
    # new row and a new slug. At most one live page per artifact.
    """
    CREATE TABLE pages (
        page_id        TEXT PRIMARY KEY,
        slug           TEXT NOT NULL UNIQUE,
        tenant_id      INTEGER NOT NULL,
        artifact_id    TEXT NOT NULL,
        visibility     TEXT NOT NULL,
        access         TEXT NOT NULL,
        password_hash  TEXT,
        title          TEXT,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        unpublished_at TEXT
    );
    CREATE UNIQUE INDEX pages_live_by_artifact ON pages(artifact_id) WHERE unpublished_at IS NULL;
    CREATE INDEX pages_by_artifact ON pages(artifact_id, created_at);
    CREATE INDEX pages_live_by_tenant ON pages(tenant_id) WHERE unpublished_at IS NULL;
    CREATE INDEX pages_gallery ON pages(created_at DESC, page_id DESC)
        WHERE visibility = 'public' AND unpublished_at IS NULL;
    """,
    # 5: small bodies inside the database (issue 17, storage/inline.py): the bytes of a blob
    # whose row says location = 'inline', written in the same transaction as that row and
    # removed in the same transaction as it. A rowid table (bodies of up to 1 MiB would make a
    # WITHOUT ROWID b-tree of overflow chains); its primary-key index covers scans by key.
    """
    CREATE TABLE blob_data (
        tenant_id  INTEGER NOT NULL,
        sha256     TEXT NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (tenant_id, sha256)
    );
    """,
    # 6: the session and agent list indexes hold only the rows that have a session or an agent.
    # A list filters on `session_id = ?` / `agent_id = ?`, which implies IS NOT NULL, so every
    # query they serve still uses them (tests/unit/test_query_plans.py); a row without one was
    # an index entry no query can reach, written by every upload that sends no session_id or
    # agent_id (2 of the 7 index entries of such an insert; 15-30 us of the writer per upload).
    # On an existing store this rebuilds the two indexes once, at the first start (300,000
    # artifacts: 1.3 s on the 2-core bench machine under load).
    """
    DROP INDEX artifacts_by_session;
    CREATE INDEX artifacts_by_session ON artifacts(tenant_id, session_id, created_at DESC, artifact_id DESC)
        WHERE state = 'active' AND session_id IS NOT NULL;
    DROP INDEX artifacts_by_agent;
    CREATE INDEX artifacts_by_agent ON artifacts(tenant_id, agent_id, created_at DESC, artifact_id DESC)
        WHERE state = 'active' AND agent_id IS NOT NULL;
    """,
    # 7: the location index leaves inline blobs out. It serves the lookup of listed store
    # objects (gc, check: services.lifecycle.rowless_objects_sql, whose `location != 'inline'`
    # term lets the planner use it); every inline blob had an entry 'inline' in it, at a random
    # place (ordered by its content hash): a leaf page more per upload in each group commit's
    # WAL (10.4 -> 9.0 WAL frames per 4 KiB upload in groups of 8, measured on 20,000 rows).
    # Scans of the inline blobs (backup) read the blobs table instead.
    """
    DROP INDEX blobs_by_location;
    CREATE INDEX blobs_by_location ON blobs(location)
        WHERE location IS NOT NULL AND location != 'inline';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION. Returns how many migrations ran.

    `conn` must be in autocommit mode (isolation_level=None).
    """
    ran = 0
    for target in range(1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = current_version(conn)
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema version {version} is newer than this artifacta-box "
                    f"understands ({SCHEMA_VERSION}); upgrade artifacta-box"
                )
            if version >= target:
                conn.execute("COMMIT")
                continue
            for statement in _split(MIGRATIONS[target - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
            ran += 1
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return ran


def _split(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements, buf = [], []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        buf.append(line)
        if sqlite3.complete_statement("\n".join(buf)):
            statements.append("\n".join(buf))
            buf = []
    if buf and "".join(buf).strip():
        statements.append("\n".join(buf))
    return statements
