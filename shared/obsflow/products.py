"""A dataset's products, downloaded from the data bucket and checked against their recorded SHA-256."""

from __future__ import annotations

import hashlib
from pathlib import Path

from botocore.exceptions import ClientError


class ChecksumMismatch(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MissingFile(RuntimeError):
    pass


def download(s3, dataset, folder: Path) -> Path:
    """Every file of the dataset, its SHA256SUMS and provenance.json, under ``folder``/<its prefix>; each file
    checked against the SHA-256 the catalogue recorded (ChecksumMismatch names one that differs)."""
    target = folder / dataset.prefix.rstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for item in [*dataset.files, {"name": "SHA256SUMS", "key": dataset.prefix + "SHA256SUMS"},
                 {"name": "provenance.json", "key": dataset.prefix + "provenance.json"}]:
        path = target / item["name"]
        try:
            s3.download_file(dataset.bucket, item["key"], str(path))
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
            raise MissingFile(f"s3://{dataset.bucket}/{item['key']} of dataset {dataset.dataset_id} is not in S3, "
                              "though the catalogue lists it") from exc
        if item.get("sha256") and _sha256(path) != item["sha256"]:
            raise ChecksumMismatch(f"{path} does not match the SHA-256 recorded for s3://{dataset.bucket}/{item['key']}")
    return target
