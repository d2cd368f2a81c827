"""Content-addressed blob storage with streaming ingest."""

from artifacta_box.storage.blobstore import (
    BlobInfo,
    LimitExceeded,
    LocalBlobStore,
    StagedBlob,
    StagingFile,
    StorageError,
    StorageFull,
    StorageUnwritable,
    fsync_dir,
    hash_file,
    is_sha256,
    write_file_durably,
)

__all__ = [
    "BlobInfo", "LimitExceeded", "LocalBlobStore", "StagedBlob", "StagingFile",
    "StorageError", "StorageFull", "StorageUnwritable", "fsync_dir", "hash_file", "is_sha256",
    "write_file_durably",
]
