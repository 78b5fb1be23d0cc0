"""Reading ingest objects from S3: ranged GETs for frames, whole small documents."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import BotoCoreError, ClientError

from obsflow.errors import Rejected, TransientError
from obsflow.ingest.documents import StoredDocument

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

    def read_document(self, bucket: str, key: str, version_id: str | None, limit: int) -> StoredDocument:
        response = self._get(bucket, key, version_id)
        if response.get("ContentLength", 0) > limit:
            response["Body"].close()
            raise Rejected("too-large", f"the document is {response['ContentLength']} bytes; at most {limit} are accepted")
        return StoredDocument(response["Body"].read(), response.get("VersionId") or version_id, response["LastModified"])


class PrefetchingReader:
    """A reader that first fetches the opening bytes of a batch's frames side by side.

    Ingest is bound by S3 latency, not CPU: reading ten headers at once costs about one
    GET's wait. What was fetched is served once; anything else (and any prefetch that
    failed) goes to the wrapped reader, so errors surface exactly as without prefetching.
    What a batch prefetched belongs to the thread handling it (the local stack hands
    batches to concurrent threads; a Lambda instance handles one at a time).
    """

    def __init__(self, reader: S3ObjectReader, workers: int):
        self._reader, self._workers = reader, workers
        self._batch = threading.local()

    @property
    def _fetched(self) -> dict[tuple, tuple[bytes, int, str | None]]:
        if not hasattr(self._batch, "fetched"):
            self._batch.fetched = {}
        return self._batch.fetched

    def prefetch(self, objects: list[tuple[str, str, str | None]], length: int) -> None:
        def fetch(obj: tuple[str, str, str | None]):
            try:
                return obj, self._reader.read_range(*obj, 0, length)
            except Exception:  # noqa: BLE001  (read again, and reported, when the object is staged)
                return obj, None

        self._fetched.clear()
        if len(objects) < 2 or self._workers < 2:
            return
        with ThreadPoolExecutor(max_workers=min(self._workers, len(objects))) as pool:
            for obj, result in pool.map(fetch, objects):
                if result is not None:
                    self._fetched[(*obj, 0, length)] = result

    def read_range(self, bucket: str, key: str, version_id: str | None, start: int, length: int):
        fetched = self._fetched.pop((bucket, key, version_id, start, length), None)
        return fetched or self._reader.read_range(bucket, key, version_id, start, length)

    def __getattr__(self, name: str):
        return getattr(self._reader, name)
