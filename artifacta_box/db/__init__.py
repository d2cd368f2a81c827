"""The database: one writer thread, a pool of readers, migrations keyed on PRAGMA user_version."""

from artifacta_box.db.database import (
    Database,
    connect_sync,
    execute,
    fetchall,
    fetchone,
    initialise,
)

__all__ = ["Database", "connect_sync", "execute", "fetchall", "fetchone", "initialise"]
