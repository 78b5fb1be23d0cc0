"""JSON documents in S3: read and write with errors that say what is missing."""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from obsflow.errors import NotFound, TransientError


def encode(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode()


def put_json(s3, bucket: str, key: str, document: Any, tags: dict[str, str] | None = None) -> str:
    """Write ``document`` (with ``tags`` as object tags); returns the SHA-256 of the bytes written."""
    body = encode(document)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **tagging(tags))
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"could not write s3://{bucket}/{key}: {exc}") from exc
    return hashlib.sha256(body).hexdigest()


def tagging(tags: dict[str, str] | None) -> dict:
    """PutObject's and CopyObject's arguments that set object tags."""
    return {"Tagging": urlencode(tags)} if tags else {}


# Tagging is one request per object, bound on AWS by each request's latency: they go side by side, as many as
# botocore's connection pool holds. (On moto the server's CPU bounds it, so the local stack gains nothing.)
TAGGING_THREADS = 10


def tag_prefix(s3, bucket: str, prefix: str, tags: dict[str, str]) -> int:
    """Set ``tags`` on every object under ``prefix`` (their current versions); returns how many."""
    tag_set = {"TagSet": [{"Key": key, "Value": value} for key, value in tags.items()]}
    tagged = 0
    with ThreadPoolExecutor(TAGGING_THREADS) as pool:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [item["Key"] for item in page.get("Contents", [])]
            # list() waits for the page and raises the first failure
            list(pool.map(lambda key: s3.put_object_tagging(Bucket=bucket, Key=key, Tagging=tag_set), keys))
            tagged += len(keys)
    return tagged


def get_json(s3, bucket: str, key: str) -> Any:
    return json.loads(get_bytes(s3, bucket, key))


READ_THREADS = 10  # as with tagging: each read waits on its request's latency


def get_json_many(s3, bucket: str, keys: list[str]) -> list[Any]:
    """The documents at ``keys``, in their order, read side by side (a run of many chunks has many small ones);
    each read in its caller's context, so a meter counts it (obsflow.metering)."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(lambda call: call(), [
            functools.partial(contextvars.copy_context().run, get_json, s3, bucket, key) for key in keys]))


def get_bytes(s3, bucket: str, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise NotFound(f"s3://{bucket}/{key} does not exist") from exc
        raise TransientError(f"could not read s3://{bucket}/{key}: {exc}") from exc
    except BotoCoreError as exc:
        raise TransientError(f"could not read s3://{bucket}/{key}: {exc}") from exc


def exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return False
        raise TransientError(f"could not read s3://{bucket}/{key}: {exc}") from exc


def keys(s3, bucket: str, prefix: str) -> set[str]:
    """The keys of every object under ``prefix``."""
    return {item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])}


def delete_prefix(s3, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix``; returns how many."""
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted
