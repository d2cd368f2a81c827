"""Memory stays bounded however large the body: a 1 GiB streaming upload (multipart) and
download through the S3 client, measured as peak RSS in a separate process."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

GIB_IN_MIB = 1024
# Parts of 8 MiB, two in flight plus the one filling, and 1 MiB read chunks: ~30 MB at most.
BOUND_MB = 64


def test_a_1_gib_streaming_upload_and_download_keep_memory_flat(s3_settings):
    args = json.dumps({"settings": dataclasses.asdict(s3_settings), "mib": GIB_IN_MIB})
    res = subprocess.run([sys.executable, "-m", "tests.s3.rss_worker", args],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["size"] == GIB_IN_MIB * 1024 * 1024
    assert out["sent_sha256"] == out["stored_sha256"] == out["read_sha256"]
    assert out["parts"] == 128
    assert out["put_peak_mb"] - out["baseline_mb"] < BOUND_MB, out
    assert out["get_peak_mb"] - out["baseline_mb"] < BOUND_MB, out
