"""What Litestream needs from the box, checked on the source: no checkpoint that waits for
readers. With Litestream replicating, `wal_checkpoint(TRUNCATE)` or `(RESTART)` blocks the
writer for the whole busy timeout and then fails (measured: scale-out notes), because
Litestream holds a read transaction to copy the WAL. PASSIVE (SQLite's autocheckpoint) never
waits. Litestream's own `_litestream_*` tables are tolerated by check, backup and restore:
tests/e2e/test_litestream.py."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "artifacta_box"
CHECKPOINT = re.compile(r"wal_checkpoint\s*(\(\s*(\w*)\s*\))?", re.IGNORECASE)


def test_the_box_never_runs_a_blocking_checkpoint():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for m in CHECKPOINT.finditer(path.read_text()):
            mode = (m.group(2) or "PASSIVE").upper()
            if mode != "PASSIVE":
                found.append(f"{path.relative_to(PACKAGE.parent)}: {m.group(0)}")
    assert found == []
