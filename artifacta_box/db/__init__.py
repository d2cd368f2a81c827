"""The database: one writer, a pool of readers, migrations keyed on PRAGMA user_version."""

from artifacta_box.db.database import (
    Database,
    connect_sync,
    fetchall,
    fetchall_sync,
    fetchone,
    fetchone_sync,
    initialise,
    run_sync,
)

__all__ = [
    "Database", "connect_sync", "fetchall", "fetchall_sync", "fetchone", "fetchone_sync",
    "initialise", "run_sync",
]
