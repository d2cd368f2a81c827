"""One lock for the whole process tree (issue 13): with `serve --workers N` every serving
process holds the data-directory lock, and no process outlives the one that started it.

Runs from source and, with ARTIFACTA_BOX_BIN set, against the single-file binary, whose first
process is the bootloader: there, killing "the main PID" kills the bootloader and the program
process below it must notice too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import box_command, clean_env, download, free_port, upload


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process we can see."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) S ppid ...": comm may hold spaces and parentheses
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        out[int(entry.name)] = (int(ppid), state)
    return out


def descendants(pid: int) -> set[int]:
    table = processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def holding_open(path: Path) -> set[int]:
    """PIDs of the processes that have `path` open."""
    target = str(path.resolve())
    pids = set()
    for pid in processes():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    pids.add(pid)
                    break
            except OSError:
                continue
    return pids


def alive(pids: set[int]) -> set[int]:
    """Those that still run (a zombie has exited: it holds no file and no lock)."""
    table = processes()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


def run_box(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(box_command() + list(args), capture_output=True, text=True,
                          env=clean_env(**(env or {})), timeout=120, check=False)


@pytest.fixture
def short_tmpdir() -> Iterator[Path]:
    """A TMPDIR for the box (where the binary unpacks itself and Sanic's manager puts its
    multiprocessing socket): not under tmp_path, which is too deep under xdist (popen-gwN/) for
    an AF_UNIX path (107 bytes at most), so that `serve --workers 2` could not start."""
    with tempfile.TemporaryDirectory(prefix="box-tree-") as d:
        yield Path(d)


def test_kill_9_of_the_main_process_leaves_no_orphan_serving(make_server, tmp_path, short_tmpdir):
    tmpdir = short_tmpdir
    srv = make_server(data_dir=tmp_path / "box", args=["--workers", "2"],
                      config="[server]\nshutdown_timeout = 10.0\n", env={"TMPDIR": str(tmpdir)})
    with srv.client() as c:
        kept = upload(c, b"acknowledged before the crash")
    backup = tmp_path / "backup"
    srv.admin("backup", str(backup))

    tree = descendants(srv.proc.pid)
    serving = holding_open(srv.data_dir / "server.lock")
    table = processes()
    workers = {p for p in serving if table[p][0] in serving}
    assert len(serving) == 3 and len(workers) == 2, (serving, workers)  # main + 2 workers

    # Keep the workers from running for a moment, so that what they hold can be looked at
    # after their main process is gone: they still live, so nothing may take the directory.
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    srv.proc.kill()
    srv.proc.wait(10)
    try:
        second = run_box("serve", "--data-dir", str(srv.data_dir), "--port", str(free_port()),
                         env={"TMPDIR": str(tmpdir)})
        assert second.returncode == 2 and "in use" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr and second.stdout == ""
        forced = run_box("restore", str(backup), "--force", "--data-dir", str(srv.data_dir),
                         env={"TMPDIR": str(tmpdir)})
        assert forced.returncode != 0 and "server is running" in forced.stderr, forced.stderr
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)

    # Running again, the workers see that their main process is gone and stop; Sanic's
    # helper processes go with them. Nothing of the tree is left.
    left = wait_gone(tree, timeout=15)
    assert not left, {p: Path(f"/proc/{p}/cmdline").read_bytes() for p in left}

    again = make_server(data_dir=srv.data_dir, env={"TMPDIR": str(tmpdir)})
    with again.client(srv.key) as c:
        assert download(c, kept["artifact_id"]) == b"acknowledged before the crash"
    assert again.stop() == 0
    forced = run_box("restore", str(backup), "--force", "--data-dir", str(srv.data_dir),
                     env={"TMPDIR": str(tmpdir)})
    assert forced.returncode == 0, forced.stderr
