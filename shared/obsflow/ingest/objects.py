"""Reading ingest objects from S3: ranged GETs for frames, whole small documents."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from obsflow.errors import Rejected, TransientError

GONE = {"NoSuchKey", "NoSuchVersion", "404"}


class S3ObjectReader:
    def __init__(self, s3_client):
        self._s3 = s3_client

    def _get(self, bucket: str, key: str, version_id: str | None, **kwargs) -> dict:
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            return self._s3.get_object(Bucket=bucket, Key=key, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in GONE:
                raise Rejected("gone", f"the object (version {version_id or 'latest'}) no longer exists: {code}") from exc
            if code == "InvalidRange":
                raise Rejected("empty", "the object is empty (0 bytes); re-transfer it") from exc
            raise TransientError(f"S3 GetObject s3://{bucket}/{key} failed: {code}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"S3 GetObject s3://{bucket}/{key} failed: {exc}") from exc

    def read_range(
        self, bucket: str, key: str, version_id: str | None, start: int, length: int
    ) -> tuple[bytes, int, str | None]:
        response = self._get(bucket, key, version_id, Range=f"bytes={start}-{start + length - 1}")
        body = response["Body"].read()
        content_range = response.get("ContentRange")  # "bytes 0-31679/534240"
        total = int(content_range.rsplit("/", 1)[1]) if content_range else len(body)
        return body, total, response.get("VersionId")

    def current_version(self, bucket: str, key: str) -> str | None:
        """The object's current version id (for notifications that do not carry one)."""
        try:
            return self._s3.head_object(Bucket=bucket, Key=key).get("VersionId")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in GONE:
                return None
            raise TransientError(f"S3 HeadObject s3://{bucket}/{key} failed: {exc}") from exc

    def read_all(self, bucket: str, key: str, version_id: str | None, limit: int) -> bytes:
        response = self._get(bucket, key, version_id)
        if response.get("ContentLength", 0) > limit:
            response["Body"].close()
            raise Rejected("too-large", f"the document is {response['ContentLength']} bytes; at most {limit} are accepted")
        return response["Body"].read()
