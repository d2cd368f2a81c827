"""Blob storage: the interface (blobs.py), the local content-addressed store (blobstore.py) and
the S3 backend (s3/), small blobs inside SQLite (inline.py)."""

from artifacta_box.storage.blobs import (
    INLINE,
    BlobMissing,
    BlobReader,
    BlobRef,
    BlobStat,
    BlobStore,
    BlobStores,
    BlobWriter,
    LimitExceeded,
    PresignedUpload,
    Received,
    StorageError,
    StorageFull,
    StorageUnwritable,
    StoredBlob,
)
from artifacta_box.storage.inline import InlineBlobStore
from artifacta_box.storage.blobstore import (
    LocalBlobStore,
    StagingFile,
    fsync_dir,
    hash_file,
    is_sha256,
    write_file_durably,
)

__all__ = [
    "INLINE", "BlobMissing", "BlobReader", "BlobRef", "BlobStat", "BlobStore", "BlobStores",
    "BlobWriter", "InlineBlobStore", "LimitExceeded", "LocalBlobStore", "PresignedUpload", "Received",
    "StagingFile", "StorageError", "StorageFull", "StorageUnwritable", "StoredBlob",
    "fsync_dir", "hash_file", "is_sha256", "write_file_durably",
]
