"""gc, check, backup and restore on the S3 backend (a real SeaweedFS; README, "Scaling out").

The local backend's lifecycle rules are tested in test_gc.py / test_check.py / test_backup.py
(they age files with os.utime); on S3 the same rules hold with the differences these tests
pin: an object is deleted only after the commit that removed its row, objects no row names
are swept (and reported by check) once older than the grace, incomplete multipart uploads are
aborted, check compares sizes and rehashes with --verify, a missing blob row is recreated from
the object that holds its bytes, backup names the objects (or copies them) and restore needs
the bucket or the copies. Timestamps are moved into the past in the database; an object's age
cannot be, so the grace is 1 s where a test needs an old object, and gc is polled until it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time

import httpx
import pytest

from artifacta_box.storage.s3 import ObjectWriter, S3Client
from tests.backends import backend_env
from tests.helpers import (
    BoxServer,
    blob_files,
    box_command,
    clean_env,
    INLINE_MAX,
    delete_blob,
    download,
    file_sized,
    s3_settings_of,
    sha,
    sql,
    tenant_id,
    upload,
)
from tests.ops_helpers import DAY, admin_json, iso_ago, offline_cli, put_bytes, reserve

SHORT_GRACE = '[retention]\norphan_grace = "1s"\n'


@pytest.fixture
def s3_server(make_server, request, seaweedfs):
    def start(config: str | None = None, **s3: str):
        return make_server(config=config, env=backend_env(request, "s3", **s3))
    return start


def location_of(srv, digest: str) -> str:
    return sql(srv, "SELECT location FROM blobs WHERE sha256 = ?", (digest,))[0][0]


def s3_call(srv, fn):
    async def go():
        async with S3Client(s3_settings_of(srv)) as client:
            return await fn(client)
    return asyncio.run(go())


def until(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def test_gc_deletes_an_object_only_after_its_row_and_the_grace(s3_server):
    srv = s3_server()
    api = srv.client()
    shared, alone = file_sized(b"shared on s3 "), file_sized(b"alone on s3 ")
    a, b, c = upload(api, shared), upload(api, shared), upload(api, alone)
    assert len(blob_files(srv)) == 2
    for art in (a, c):
        assert api.delete(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id IN (?, ?)",
        (iso_ago(31 * DAY), a["artifact_id"], c["artifact_id"]))
    done = admin_json(srv, "gc")
    assert (done["purged_artifacts"], done["deleted_blobs"]) == (2, 0)  # within the grace
    alone_key = location_of(srv, sha(alone))
    assert alone_key in blob_files(srv)

    sql(srv, "UPDATE blobs SET unreferenced_at = ? WHERE sha256 = ?", (iso_ago(7200), sha(alone)))
    dry = admin_json(srv, "gc", "--dry-run")
    assert dry["deleted_blobs"] == 1 and alone_key in blob_files(srv)
    done = admin_json(srv, "gc")
    assert done["deleted_blobs"] == 1 and done["reclaimed_bytes"] == len(alone)
    assert blob_files(srv) == [location_of(srv, sha(shared))]
    assert download(api, b["artifact_id"]) == shared
    assert admin_json(srv, "check")["ok"] is True


def test_a_stale_direct_upload_loses_its_row_and_its_object(s3_server):
    srv = s3_server()
    api = srv.client()
    content = b"put straight to s3, never completed " * 30
    res = reserve(api, len(content))
    assert put_bytes(res, content).status_code == 200
    assert len(blob_files(srv)) == 1
    sql(srv, "UPDATE artifacts SET upload_expires_at = ? WHERE artifact_id = ?",
        (iso_ago(7200), res["artifact_id"]))
    report = admin_json(srv, "gc")
    assert report["purged_pending"] == 1
    assert blob_files(srv) == []


def test_orphan_objects_and_incomplete_uploads_are_swept_after_the_grace(s3_server):
    srv = s3_server(SHORT_GRACE)
    api = srv.client()
    kept = upload(api, b"a real artifact")
    pending = reserve(api, 11)
    assert put_bytes(pending, b"held bytes!").status_code == 200
    tid = tenant_id(srv, "default")
    orphan_key = f"blobs/{tid}/ab/ab{'0' * 30}"

    async def leave_debris(client: S3Client) -> None:
        await client.put_bytes(orphan_key, b"crashed before its commit")
        writer = ObjectWriter(client, f"blobs/{tid}/cd/cd{'1' * 30}", 10**8)
        await writer.write(os.urandom(9 * 1024 * 1024))  # a multipart upload, never finished
        first = writer._in_flight[0]  # noqa: SLF001
        await first.upload  # its first part is stored (and hashed); then the "crash"
        await first.hashed

    s3_call(srv, leave_debris)
    # The orphan and the incomplete upload pass the grace one after the other (the upload was
    # started later, and the store records its start to the second): sum what the runs swept.
    swept = {"orphan_files": 0, "aborted_uploads": 0}

    def gc_until_both_swept() -> bool:
        report = admin_json(srv, "gc")
        for k in swept:
            swept[k] += report[k]
        return swept["orphan_files"] > 0 and swept["aborted_uploads"] > 0

    until(gc_until_both_swept, "the grace to pass")
    assert swept["orphan_files"] == 1 and swept["aborted_uploads"] >= 1
    assert "s3:" + orphan_key not in blob_files(srv)
    assert len(blob_files(srv)) == 2                       # the artifact's and the pending one's
    assert download(api, kept["artifact_id"]) == b"a real artifact"
    uploads = s3_call(srv, lambda c: _uploads(c))
    assert uploads == []
    done = api.post(f"/v1/artifacts/{pending['artifact_id']}/complete")
    assert done.status_code == 200 and done.json()["size_bytes"] == 11


async def _uploads(client: S3Client) -> list:
    return [u async for u in client.list_multipart_uploads("blobs/")]


def test_check_finds_lost_resized_and_corrupt_objects_and_orphans(s3_server):
    srv = s3_server(SHORT_GRACE)
    api = srv.client()
    lost, resized, corrupt, fine = (upload(api, os.urandom(INLINE_MAX + n))
                                    for n in (1000, 2000, 3000, 4000))
    tid = tenant_id(srv, "default")
    delete_blob(srv, tid, lost["content_hash"])
    s3_call(srv, lambda c: c.put_bytes(location_of(srv, resized["content_hash"])[3:], b"short"))
    s3_call(srv, lambda c: c.put_bytes(location_of(srv, corrupt["content_hash"])[3:],
                                       os.urandom(INLINE_MAX + 3000)))
    s3_call(srv, lambda c: c.put_bytes(f"blobs/{tid}/ee/ee{'2' * 30}", b"nobody's"))

    report = until(lambda: (r := admin_json(srv, "check", check=False))["problem_count"] >= 3
                   and not r["recent_orphans"] and r, "the orphan to pass the grace")
    kinds = sorted(p["kind"] for p in report["problems"])
    assert kinds == ["missing_blob", "orphan_file", "size_mismatch"]  # sizes only, by default
    verified = admin_json(srv, "check", "--verify", check=False)
    assert sorted(p["kind"] for p in verified["problems"]) == [
        "hash_mismatch", "missing_blob", "orphan_file", "size_mismatch"]
    repaired = admin_json(srv, "check", "--repair", check=False)
    fixed = {p["kind"]: p["repaired"] for p in repaired["problems"]}
    assert fixed == {"missing_blob": False, "orphan_file": True, "size_mismatch": False}
    assert f"s3:blobs/{tid}/ee/ee{'2' * 30}" not in blob_files(srv)
    assert download(api, fine["artifact_id"]) is not None


def test_check_repair_recreates_a_lost_blob_row_from_its_object(s3_server):
    srv = s3_server()
    api = srv.client()
    art = upload(api, b"the row goes, the object stays " * 2000)
    location = location_of(srv, art["content_hash"])
    sql(srv, "DELETE FROM blobs WHERE sha256 = ?", (art["content_hash"],))
    report = admin_json(srv, "check", "--repair", check=False)
    assert {p["kind"]: p["repaired"] for p in report["problems"]}["missing_blob_row"] is True
    assert location_of(srv, art["content_hash"]) == location
    assert admin_json(srv, "check")["ok"] is True
    assert download(api, art["artifact_id"]) == b"the row goes, the object stays " * 2000


def test_backup_names_the_objects_and_restore_needs_the_bucket_or_the_copies(s3_server,
                                                                            tmp_path):
    srv = s3_server()
    api = srv.client()
    arts = {upload(api, os.urandom(n))["artifact_id"]: None for n in (10, 300_000, 9_000_000)}
    for aid in arts:
        arts[aid] = download(api, aid)

    names = tmp_path / "names"
    srv.admin("backup", str(names))
    manifest = (names / "manifest.json").read_text()
    assert '"backend": "s3"' in manifest and '"copied": false' in manifest
    # the 10 bytes are inline: inside the database snapshot, rehashed and counted
    assert len((names / "objects.jsonl").read_text().splitlines()) == 2
    assert json.loads(manifest)["blobs"]["inline"] == {"count": 1, "bytes": 10}
    assert not [p for p in names.rglob("*") if p.is_file() and "blobs" in p.parts]

    # Into a local box: refused, saying why.
    res = offline_cli("restore", str(names), "--data-dir", str(tmp_path / "local"))
    assert res.returncode != 0 and "--copy-objects" in res.stderr

    # Into a box configured with the bucket: the database points at the same objects.
    env = {k: v for k, v in srv.env.items() if k.startswith("ARTIFACTA_BOX_S3_")
           or k == "ARTIFACTA_BOX_STORAGE_BACKEND"}
    srv.stop()
    same = tmp_path / "same-bucket"
    res = _cli_with(env, "restore", str(names), "--data-dir", str(same))
    assert res.returncode == 0, res.stderr
    res = _cli_with(env, "check", "--verify", "--data-dir", str(same))
    assert res.returncode == 0, res.stdout + res.stderr

    # A backup with the objects copied restores into a box with no S3 at all.
    srv.start()
    copies = tmp_path / "copies"
    srv.admin("backup", "--copy-objects", str(copies))
    local = tmp_path / "local-copy"
    res = offline_cli("restore", str(copies), "--data-dir", str(local))
    assert res.returncode == 0, res.stderr
    res = offline_cli("check", "--data-dir", str(local))
    assert res.returncode == 0, res.stdout + res.stderr
    locations = _rows(local)
    assert sorted(locations, key=str) == [None, None, "inline"]  # objects became files
    srv.stop()
    restored = _serve(local, srv)
    with httpx.Client(base_url=restored.url, headers={"Authorization": f"Bearer {srv.key}"},
                      timeout=60) as c:
        for aid, body in arts.items():
            assert download(c, aid) == body
    restored.stop()


def _cli_with(env: dict[str, str], *args: str):
    return subprocess.run(box_command() + list(args), capture_output=True, text=True,
                          env=clean_env(**env), timeout=300, check=False)


def _rows(data_dir) -> list:
    conn = sqlite3.connect(str(data_dir / "artifacta.db"))
    try:
        return [r[0] for r in conn.execute("SELECT location FROM blobs")]
    finally:
        conn.close()


def _serve(data_dir, like):
    srv = BoxServer(data_dir)
    srv.key = like.key
    return srv.start()
