"""The database: one writer, a pool of readers, migrations keyed on PRAGMA user_version."""

from artifacta_box.db.database import Database, connect_sync, fetchall, fetchone, initialise

__all__ = ["Database", "connect_sync", "fetchall", "fetchone", "initialise"]
