"""Running a test module against both blob backends.

A module that imports `both_blob_backends` from here runs every test once per backend: its servers
(`make_server`, `server`, `shared_server`, or a module's own fixture through `backend_env`)
store new blobs in the data directory ("local") or in a bucket of the test process's real
SeaweedFS ("s3", one fresh bucket per server). Other modules get conftest's `blob_backend`,
always "local".
"""

from __future__ import annotations

import os
import secrets

import pytest

BACKENDS = ["local", "s3"]


@pytest.fixture(scope="module", params=BACKENDS, name="blob_backend")
def both_blob_backends(request) -> str:
    """Overrides conftest's `blob_backend` in a module that imports it."""
    return request.param


def backend_env(request, backend: str, **s3_settings: str) -> dict[str, str]:
    """Environment that points a box at `backend`: for "s3", a new bucket (removed when the
    requesting fixture's scope ends) and the [s3] settings for it; `s3_settings` adds more
    (e.g. downloads="redirect")."""
    if backend != "s3":
        return {}
    from tests.s3_server import ADMIN, REGION

    weed = request.getfixturevalue("seaweedfs")
    bucket = f"b-{os.getpid()}-{secrets.token_hex(6)}"
    weed.create_bucket(bucket)
    request.addfinalizer(lambda: weed.delete_bucket(bucket))
    env = {"ARTIFACTA_BOX_STORAGE_BACKEND": "s3", "ARTIFACTA_BOX_S3_ENDPOINT": weed.endpoint,
           "ARTIFACTA_BOX_S3_BUCKET": bucket, "ARTIFACTA_BOX_S3_REGION": REGION,
           "ARTIFACTA_BOX_S3_ACCESS_KEY_ID": ADMIN[0],
           "ARTIFACTA_BOX_S3_SECRET_ACCESS_KEY": ADMIN[1]}
    env.update({f"ARTIFACTA_BOX_S3_{k.upper()}": str(v) for k, v in s3_settings.items()})
    return env
