"""The S3 blob backend's building blocks: settings, a SigV4 signer, a minimal client, a
streaming writer and the start-up probe (see each module's docstring)."""

from artifacta_box.storage.s3.client import (
    MultipartUpload,
    ObjectInfo,
    ObjectReader,
    PresignedPut,
    S3AccessDenied,
    S3BadDigest,
    S3Client,
    S3Error,
    S3NoSuchBucket,
    S3NotFound,
    S3PreconditionFailed,
    S3Unavailable,
)
from artifacta_box.storage.s3.probe import ProbeFailed, ProbeReport, probe
from artifacta_box.storage.s3.settings import S3Settings, S3SettingsError
from artifacta_box.storage.s3.writer import ObjectWriter, WrittenObject

__all__ = [
    "MultipartUpload", "ObjectInfo", "ObjectReader", "ObjectWriter", "PresignedPut",
    "ProbeFailed", "ProbeReport", "S3AccessDenied", "S3BadDigest", "S3Client", "S3Error",
    "S3NoSuchBucket", "S3NotFound", "S3PreconditionFailed", "S3Settings", "S3SettingsError",
    "S3Unavailable", "WrittenObject", "probe",
]
