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
    hash_file,
)

__all__ = [
    "BlobInfo", "LimitExceeded", "LocalBlobStore", "StagedBlob", "StagingFile",
    "StorageError", "StorageFull", "StorageUnwritable", "hash_file",
]
