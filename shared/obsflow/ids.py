"""The ids the summit and operators name things by (candidates, OPs, manifests, proposals, runs, datasets):
each becomes part of an S3 key, a DynamoDB key or a file name, so one rule, checked wherever one enters."""

from __future__ import annotations

import re

MAX_ID_LENGTH = 128
# A letter or digit, then letters, digits, '.', '_', '-'; never '..' (a key or a path must not climb).
ID_PATTERN = rf"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_LENGTH - 1}}}$"
ID_RULE = (f"a letter or digit, then up to {MAX_ID_LENGTH - 1} letters, digits, '.', '_' or '-', "
           "without '..'")


def is_id(value: str) -> bool:
    return re.fullmatch(ID_PATTERN, value) is not None
