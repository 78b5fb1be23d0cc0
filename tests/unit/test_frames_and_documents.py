"""What makes a frame, a manifest or a candidate acceptable."""

from __future__ import annotations

import io
import json

import pytest
from astropy.io import fits

from obsflow.errors import Rejected
from obsflow.ingest.documents import ProcessingCandidate, TransferManifest, parse_document
from obsflow.ingest.frames import frame_from_header, valid_fried_parameter


@pytest.fixture
def header(small_candidate):
    _, body = small_candidate.frame_objects()[-1]
    return fits.open(io.BytesIO(body))[0].header.copy()


def make_frame(header, op_in_key=None):
    return frame_from_header(header, op_in_key=op_in_key or header["ID___008"], bucket="b", key="raw/x/y.fits",
                             version_id="v1", etag="e", size=100, header_bytes=100)


def test_a_valid_spec122_header_becomes_a_frame(header):
    frame = make_frame(header)
    assert frame.op_id == "cand_small_observe"
    assert frame.task_type == "observe"
    assert frame.proposal_id == "pid_1_23"
    assert frame.fried_parameter == pytest.approx(0.1)


def test_missing_required_keyword_is_named(header):
    del header["ID___013"]
    with pytest.raises(Rejected, match="ID___013") as rejected:
        make_frame(header)
    assert rejected.value.code == "missing-keywords"


def test_keyword_of_the_wrong_type_fails_spec122_validation(header):
    header["ID___012"] = 5
    with pytest.raises(Rejected, match="ID___012") as rejected:
        make_frame(header)
    assert rejected.value.code == "spec122"


def test_op_in_key_must_agree_with_the_header(header):
    with pytest.raises(Rejected, match="upload it under raw/cand_small_observe/") as rejected:
        make_frame(header, op_in_key="some_other_op")
    assert rejected.value.code == "op-mismatch"


@pytest.mark.parametrize("r0, locked, expected", [(0.1, True, 0.1), (0.1, False, None), (7.0, True, None), (-1, True, None)])
def test_fried_parameter_is_kept_only_when_ao_is_locked_and_plausible(r0, locked, expected):
    assert valid_fried_parameter(fits.Header({"AO___001": r0, "AO___002": locked})) == expected


def test_manifest_and_candidate_documents_parse():
    manifest = parse_document(TransferManifest, json.dumps(
        {"manifest_id": "m1", "observing_programs": [{"op_id": "a", "expected_frames": 3}]}).encode(),
        "manifests/m1.json", "manifest_id")
    assert manifest.observing_programs[0].expected_frames == 3
    candidate = parse_document(ProcessingCandidate, json.dumps(
        {"candidate_id": "c1", "proposal_id": "p", "instrument": "VBI", "observe_op": "o", "calibration_ops": ["d"]}).encode(),
        "candidates/c1.json", "candidate_id")
    assert candidate.op_ids == ["o", "d"]


@pytest.mark.parametrize(
    "body, code, words",
    [
        (b"{not json", "malformed-json", "not valid JSON"),
        (b'{"manifest_id": "m1", "observing_programs": [{"op_id": "a", "expected_frames": 0}]}', "schema",
         "observing_programs.0.expected_frames"),
        (b'{"manifest_id": "m1", "observing_programs": [{"op_id": "a", "expected_frames": 1}], "x": 1}', "schema", "x"),
        (b'{"manifest_id": "m1", "observing_programs": [{"op_id": "a", "expected_frames": 1},'
         b' {"op_id": "a", "expected_frames": 2}]}', "schema", "more than once"),
        (b'{"manifest_id": "m2", "observing_programs": [{"op_id": "a", "expected_frames": 1}]}', "id-mismatch", "m2"),
    ],
    ids=["malformed", "zero-frames", "unknown-field", "repeated-op", "id-mismatch"],
)
def test_bad_manifests_are_rejected_with_a_specific_reason(body, code, words):
    with pytest.raises(Rejected) as rejected:
        parse_document(TransferManifest, body, "manifests/m1.json", "manifest_id")
    assert rejected.value.code == code
    assert words in rejected.value.reason


def candidate_body(**changes) -> bytes:
    document = {"candidate_id": "c1", "proposal_id": "pid_1_23", "instrument": "VBI", "observe_op": "op_obs",
                "calibration_ops": ["op_dark", "op_gain"], **changes}
    return json.dumps(document).encode()


@pytest.mark.parametrize("field, value", [
    ("proposal_id", "../../pid_1_23/x"), ("proposal_id", ""), ("proposal_id", ".."), ("proposal_id", "p" * 129),
    ("calibration_ops", ["op_dark", ""]), ("calibration_ops", ["../../x"]), ("calibration_ops", ["a/b"]),
    ("observe_op", "op..obs"), ("instrument", "VBI/../x"), ("recipe", "../recipe"),
])
def test_every_id_of_a_candidate_that_becomes_a_key_is_checked(field, value):
    # Given a candidate with one id that could climb out of a key, or is empty or too long
    # When it is parsed, Then it is rejected naming the field and the rule
    with pytest.raises(Rejected) as rejected:
        parse_document(ProcessingCandidate, candidate_body(**{field: value}), "candidates/c1.json", "candidate_id")
    assert rejected.value.code == "schema" and field in rejected.value.reason and "is not an id" in rejected.value.reason


def test_a_manifest_s_op_ids_are_checked_and_its_counts_bounded():
    for body in ({"manifest_id": "m1", "observing_programs": [{"op_id": "../op", "expected_frames": 2}]},
                 {"manifest_id": "m1", "observing_programs": [{"op_id": "op", "expected_frames": 10**9}]}):
        with pytest.raises(Rejected) as rejected:
            parse_document(TransferManifest, json.dumps(body).encode(), "manifests/m1.json", "manifest_id")
        assert rejected.value.code == "schema"


def test_a_candidate_listing_40000_calibration_ops_is_rejected_for_its_count():
    # Given a candidate document naming 40,000 calibration OPs (0.5 MB; it once stalled ingest for minutes)
    body = candidate_body(calibration_ops=[f"op_{i}" for i in range(40_000)])
    # When it is parsed, Then it is rejected for its count, before any OP is looked up
    with pytest.raises(Rejected) as rejected:
        parse_document(ProcessingCandidate, body, "candidates/c1.json", "candidate_id")
    assert rejected.value.code == "schema" and "at most 100 items" in rejected.value.reason


@pytest.mark.parametrize("arguments", [["runs", "show", "../x"], ["datasets", "download", "ds/../../etc"],
                                        ["candidates", "show", ".."], ["tickets", "resolve", "a/b", "--note", "n"]])
def test_cli_id_arguments_are_checked_before_anything_is_asked(arguments):
    from click.testing import CliRunner

    from obsflow.cli import main

    result = CliRunner().invoke(main, ["--endpoint-url", "http://127.0.0.1:9", *arguments])
    assert result.exit_code == 2 and "is not an id" in result.output
