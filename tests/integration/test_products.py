"""Downloading a dataset: every file checked against its recorded SHA-256; a file the catalogue lists but S3
lacks, or one that differs, is named (moto S3)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from obsflow import products

PREFIX = "pid_1_23/ds-abc/"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data")
        for name, body in (("l1.fits", b"frame"), ("SHA256SUMS", b"sums"), ("provenance.json", b"{}")):
            client.put_object(Bucket="data", Key=PREFIX + name, Body=body)
        yield client


def dataset(sha256: str) -> SimpleNamespace:
    return SimpleNamespace(dataset_id="ds-abc", bucket="data", prefix=PREFIX,
                           files=[{"name": "l1.fits", "key": PREFIX + "l1.fits", "sha256": sha256}])


def test_a_dataset_downloads_with_every_file_checked(s3, tmp_path):
    target = products.download(s3, dataset(hashlib.sha256(b"frame").hexdigest()), tmp_path)
    assert sorted(p.name for p in target.iterdir()) == ["SHA256SUMS", "l1.fits", "provenance.json"]


def test_a_file_that_differs_from_its_recorded_sha256_is_named(s3, tmp_path):
    with pytest.raises(products.ChecksumMismatch, match="l1.fits does not match"):
        products.download(s3, dataset(hashlib.sha256(b"another frame").hexdigest()), tmp_path)


def test_a_file_the_catalogue_lists_but_s3_lacks_is_named(s3, tmp_path):
    s3.delete_object(Bucket="data", Key=PREFIX + "l1.fits")
    with pytest.raises(products.MissingFile, match=f"s3://data/{PREFIX}l1.fits of dataset ds-abc is not in S3"):
        products.download(s3, dataset("0" * 64), tmp_path)
