"""The comparison's reads from a stage: dataset records from the catalogue's table, products from the data bucket
through the documents and FITS header readers (a header by ranged GETs, one frame's data at a time)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

from obsflow.comparison.versions import UnreadableFrame
from obsflow.errors import Rejected
from obsflow.ingest.fits_header import read_header_values
from obsflow.ingest.objects import S3ObjectReader
from obsflow.runs import documents
from obsflow.tables import datasets

HIDDEN = ("files_inline", "provenance_inline", "spilled")  # read as ``files`` and ``provenance``


class StageVersionReads:
    def __init__(self, s3, header_read_bytes: int, header_max_bytes: int):
        self.s3, self.reader = s3, S3ObjectReader(s3)
        self.header_read_bytes, self.header_max_bytes = header_read_bytes, header_max_bytes

    def dataset(self, dataset_id: str) -> dict | None:
        item = datasets.get(dataset_id)
        if item is None:
            return None
        return {**{k: v for k, v in item.attribute_values.items() if k not in HIDDEN}, "files": item.files,
                "provenance": item.provenance}

    def document(self, bucket: str, key: str) -> dict:
        return documents.get_json(self.s3, bucket, key)

    def frame_header(self, bucket: str, key: str) -> Mapping:
        try:
            return read_header_values(self.reader, bucket, key, None, first_read=self.header_read_bytes,
                                      max_header=self.header_max_bytes)[0]
        except Rejected:
            return {}  # no header to match it by: it is matched by its name, and its data read says what is wrong

    def frame_data(self, bucket: str, key: str):
        import numpy as np
        from astropy.io import fits

        body = documents.get_bytes(self.s3, bucket, key)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(io.BytesIO(body)) as hdus:
                    image = next((hdu for hdu in hdus if hdu.is_image and hdu.data is not None), None)
                    data = None if image is None else np.array(image.data)
        except (OSError, ValueError) as exc:
            raise UnreadableFrame(f"s3://{bucket}/{key} is not a FITS image astropy can read: {exc}") from exc
        if data is None:
            raise UnreadableFrame(f"s3://{bucket}/{key} holds no image")
        return data
