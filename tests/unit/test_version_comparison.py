"""Two versions of a product compared: the pixel statistics on arrays, and the comparison read model on fakes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obsflow.comparison.pixels import ShapeMismatch, differences
from obsflow.comparison.versions import UnreadableFrame, VersionComparison
from obsflow.errors import NotFound
from obsflow.monitor import views

RNG_SEED = 20261121


def frame(seed: int, shape=(16, 12)) -> np.ndarray:
    return np.random.default_rng(seed).normal(1000.0, 50.0, shape).astype(np.float32)


# -- the array functions ------------------------------------------------------------------------------------------
def test_identical_frames_differ_by_nothing():
    # Given a frame and an exact copy
    a = frame(1)
    # When their differences are measured
    found = differences(a, a.copy())
    # Then every statistic is zero and they are identical
    assert (found.pixels, found.mean, found.rms, found.max_abs, found.relative) == (a.size, 0.0, 0.0, 0.0, 0.0)
    assert found.identical and found.finite_in_one_only == 0


def test_an_offset_and_one_changed_pixel_give_their_mean_rms_max_and_relative_size():
    # Given B = A + 2 everywhere, and one pixel 10 higher still
    a = frame(2, (4, 5)).astype(np.float64)
    b = a + 2.0
    b[1, 3] += 10.0
    # When their differences are measured
    found = differences(a, b)
    # Then the mean, RMS and largest |B - A| are those of the 20 differences, and the relative size is RMS(B-A)/RMS(A)
    diff = np.full(20, 2.0)
    diff[8] = 12.0
    assert found.mean == pytest.approx(diff.mean()) and found.rms == pytest.approx(math.sqrt((diff ** 2).mean()))
    assert found.max_abs == 12.0 and not found.identical
    assert found.relative == pytest.approx(found.rms / math.sqrt((a ** 2).mean()))


def test_pixels_finite_in_one_version_only_are_counted_apart_and_left_out():
    # Given B with two pixels set NaN (a new bad-pixel mask) and one pixel NaN in both
    a, b = frame(3), frame(3)
    a[0, 0] = b[0, 0] = np.nan
    b[5, 5] = b[6, 6] = np.nan
    # When their differences are measured
    found = differences(a, b)
    # Then the two are counted apart, the rest is compared and equal, and the versions are not identical
    assert found.finite_in_one_only == 2 and found.pixels == a.size - 3
    assert found.max_abs == 0.0 and not found.identical


def test_summing_by_blocks_of_rows_gives_what_summing_the_whole_frame_does():
    # Given two seeded 3-D frames (1 x 64 x 48)
    a, b = frame(RNG_SEED, (1, 64, 48)), frame(RNG_SEED + 1, (1, 64, 48))
    # When they are measured one row at a time, and all at once
    by_rows, whole = differences(a, b, rows_per_block=1), differences(a, b, rows_per_block=10_000)
    # Then both agree with numpy over the whole frame
    diff = b.astype(np.float64) - a.astype(np.float64)
    for found in (by_rows, whole):
        assert found.mean == pytest.approx(diff.mean()) and found.rms == pytest.approx(np.sqrt((diff ** 2).mean()))
        assert found.max_abs == pytest.approx(np.abs(diff).max())


def test_frames_of_different_shapes_are_not_compared():
    with pytest.raises(ShapeMismatch, match=r"\(4, 4\) and \(4, 5\)"):
        differences(np.zeros((4, 4)), np.zeros((4, 5)))


def test_nothing_finite_in_both_and_a_zero_reference_give_no_statistic_rather_than_nan():
    # Given frames with no pixel finite in both, and an A that is zero everywhere
    nothing = differences(np.full((2, 2), np.nan), np.ones((2, 2)))
    zero = differences(np.zeros((2, 2)), np.ones((2, 2)))
    # Then the statistics that cannot be computed are None, never NaN
    assert (nothing.pixels, nothing.mean, nothing.relative, nothing.finite_in_one_only) == (0, None, None, 4)
    assert zero.rms == 1.0 and zero.relative is None


# -- the comparison on fakes --------------------------------------------------------------------------------------
class FakeReads:
    """Datasets, documents, FITS headers and frames in memory; records which frames were read, in order."""

    def __init__(self):
        self.datasets, self.documents, self.headers, self.data = {}, {}, {}, {}
        self.frames_read: list[str] = []
        self.headers_read: list[str] = []

    def dataset(self, dataset_id):
        return self.datasets.get(dataset_id)

    def document(self, bucket, key):
        return self.documents[key]

    def frame_header(self, bucket, key):
        self.headers_read.append(key)
        return self.headers.get(key, {})

    def frame_data(self, bucket, key):
        self.frames_read.append(key)
        if key not in self.data:
            raise UnreadableFrame(f"s3://{bucket}/{key} holds no image")
        return self.data[key]


def l1_file(dataset_id: str, index: int) -> dict:
    name = f"VBI_{dataset_id}_{index:04d}_L1.fits"
    return {"name": name, "key": f"pid_1_23/{dataset_id}/{name}", "sha256": f"{dataset_id}-{index}",
            "tags": ["product", "l1"], "size": 1}


def add_version(reads: FakeReads, dataset_id: str, observe: list[str], quantize: float, qc_light: float,
                calibration: str = "ds-cal1", code: str = "obsflow 0.9", product: str = "prod-1") -> dict:
    """A vbi-l1 dataset of ``observe`` frames: each L1 frame's header names its observe frame; its pixels are
    seeded by that frame and quantized to a step of ``quantize`` (0: as calibrated)."""
    files = [l1_file(dataset_id, i) for i in range(len(observe))]
    for file, file_id in zip(files, observe):
        reads.headers[file["key"]] = {"FILE_ID": file_id, "DSETID": dataset_id}
        data = frame(sum(map(ord, file_id)))
        reads.data[file["key"]] = np.round(data / quantize) * quantize if quantize else data
    metrics_key = f"pid_1_23/{dataset_id}/quality_metrics.json"
    reads.documents[metrics_key] = {
        "frames": [{"light_level": qc_light, "fried_parameter": 0.1}],
        "warnings": [],
        "qc": [{"name": "light level, median", "value": qc_light, "unit": "ct", "note": ""},
               {"name": "exposure time", "value": "4", "unit": "ms", "note": ""}]}
    files.append({"name": "quality_metrics.json", "key": metrics_key, "sha256": "q", "tags": ["quality", "product"]})
    reads.datasets[dataset_id] = {
        "dataset_id": dataset_id, "product_id": product, "kind": "science", "proposal_id": "pid_1_23",
        "status": "ACTIVE", "recipe": "vbi-l1@3.0.0", "version_key": f"v-{dataset_id}", "code_version": code,
        "run_id": f"run-{dataset_id}", "campaign": None, "frame_count": len(observe), "created_at": dataset_id,
        "bucket": "data", "files": files,
        "provenance": {
            "configuration": {"parameters": {"light_level_tolerance": 0.2},
                              "options": {"chunk_frames": 32, "l1_quantize_level": quantize}},
            "tasks": [{"task": "parse", "code_version": "obsflow 0.9", "libraries": {"numpy": "2.1"}},
                      {"task": "frames", "code_version": code, "libraries": {"numpy": "2.1", "astropy": "7.0"}}],
            "input_frames": [{"file_id": f, "op_id": "op_obs", "role": "observe", "task_type": "observe",
                              "version_id": "1"} for f in observe]
            + [{"file_id": "dark_1", "op_id": "op_cal", "role": "calibration", "task_type": "dark", "version_id": "1"}],
            "upstream_datasets": [{"role": "calibration", "instance_id": "ri-cal", "dataset_id": calibration,
                                   "recipe": "vbi-calibration@1.0.0", "kind": "calibration", "version_key": "c1"}],
        },
    }
    return reads.datasets[dataset_id]


@pytest.fixture
def two_versions():
    """Given ds-a (observe frames f1, f2, f3; lossless) and ds-b (f2, f3, f4; quantized to 0.5, a new code version,
    a new master calibration, a higher light level)."""
    reads = FakeReads()
    add_version(reads, "ds-a", ["f1", "f2", "f3"], 0, 1000.0)
    add_version(reads, "ds-b", ["f2", "f3", "f4"], 0.5, 1003.5, calibration="ds-cal2", code="obsflow 1.0")
    return reads


def test_the_comparison_shows_what_changed_in_the_provenance(two_versions):
    # When ds-a and ds-b are compared
    comparison = VersionComparison(two_versions)
    result = comparison.compare(*comparison.records("ds-a", "ds-b"))
    # Then they are versions of one product, and the option that changed is shown with both values
    assert result["same_product"] and result["note"] is None
    assert result["configuration"] == [{"name": "options.l1_quantize_level", "a": 0, "b": 0.5}]
    # And the code version of the task that changed, not that of the one that did not
    assert result["code"] == [{"task": "frames", "item": "code_version", "a": "obsflow 0.9", "b": "obsflow 1.0"}]
    assert {r["field"]: r["same"] for r in result["summary"]}["code_version"] is False
    # And the input frames added and removed, and the master calibration each used
    assert [f["file_id"] for f in result["inputs"]["added"]] == ["f4"]
    assert [f["file_id"] for f in result["inputs"]["removed"]] == ["f1"]
    assert result["inputs"]["unchanged"] == 3 and result["inputs"]["changed"] == []
    assert [(u["dataset_id"], u["used_by"]) for u in result["upstream"]] == [("ds-cal1", "A"), ("ds-cal2", "B")]


def test_the_comparison_gives_each_qc_value_of_both_with_the_difference(two_versions):
    comparison = VersionComparison(two_versions)
    result = comparison.compare(*comparison.records("ds-a", "ds-b"))
    qc = {row["name"]: row for row in result["qc"]}
    # Then a numeric QC value has B - A, with its unit
    assert qc["light level, median"] == {"name": "light level, median", "a": 1000.0, "b": 1003.5,
                                              "difference": 3.5, "unit": "ct", "same": False}
    # And a text value is shown for both, without a difference; the values derived from the frames are there too
    assert (qc["exposure time"]["difference"], qc["exposure time"]["same"]) == (None, True)
    assert qc["median_light_level"]["difference"] == pytest.approx(3.5) and qc["warnings"]["difference"] == 0.0


def test_frames_are_matched_by_their_observe_frame_and_read_one_pair_at_a_time(two_versions):
    comparison = VersionComparison(two_versions)
    result = comparison.compare(*comparison.records("ds-a", "ds-b"))
    # Then the frames of f2 and f3 are compared, though their files have other names and places in each version
    assert [(r["frame"], r["a_file"], r["b_file"]) for r in result["frames"]] == [
        ("f2", "VBI_ds-a_0001_L1.fits", "VBI_ds-b_0000_L1.fits"), ("f3", "VBI_ds-a_0002_L1.fits", "VBI_ds-b_0001_L1.fits")]
    # And their pixels differ by the quantization: at most half its step, small relative to the signal
    for row in result["frames"]:
        assert 0 < row["max_abs"] <= 0.25 and 0 < row["rms"] < 0.25 and row["relative"] < 1e-3
        assert row["pixels"] == 16 * 12 and not row["identical"]
    # And f1 and f4 are listed as in one version only
    assert [f["frame"] for f in result["frames_only_in_a"]] == ["f1"]
    assert [f["frame"] for f in result["frames_only_in_b"]] == ["f4"]
    summary = result["frames_summary"]
    assert summary["largest_max_abs"] == max(r["max_abs"] for r in result["frames"])
    assert {k: v for k, v in summary.items() if k != "largest_max_abs"} == {
        "compared": 2, "identical": 0, "differing": 2, "not_comparable": 0, "only_in_a": 1, "only_in_b": 1}
    # And the frames were read as pairs, one after the other: never more than one pair at once
    assert two_versions.frames_read == ["pid_1_23/ds-a/VBI_ds-a_0001_L1.fits", "pid_1_23/ds-b/VBI_ds-b_0000_L1.fits",
                                        "pid_1_23/ds-a/VBI_ds-a_0002_L1.fits", "pid_1_23/ds-b/VBI_ds-b_0001_L1.fits"]


def test_a_comparison_asked_again_reads_no_frame_again_when_it_keeps_results(two_versions):
    # Given a comparison that keeps per-frame results (as the monitor's page, which refreshes)
    comparison = VersionComparison(two_versions, cache_size=100)
    comparison.compare(*comparison.records("ds-a", "ds-b"))
    read, headers = len(two_versions.frames_read), len(two_versions.headers_read)
    # When it is asked again
    again = comparison.compare(*comparison.records("ds-a", "ds-b"))
    # Then no header or frame is read again, and the answer is the same
    assert (len(two_versions.frames_read), len(two_versions.headers_read)) == (read, headers)
    assert len(again["frames"]) == 2 and all(r["max_abs"] > 0 for r in again["frames"])


def test_without_pixels_no_frame_is_read(two_versions):
    comparison = VersionComparison(two_versions)
    result = comparison.compare(*comparison.records("ds-a", "ds-b"), pixels=False)
    assert "frames" not in result and two_versions.frames_read == [] and two_versions.headers_read == []


def test_datasets_of_different_products_are_said_to_be_so_and_compared_anyway(two_versions):
    # Given ds-c, of another product, sharing observe frame f3 with ds-a
    add_version(two_versions, "ds-c", ["f3", "f9"], 0, 990.0, product="prod-2")
    comparison = VersionComparison(two_versions)
    # When they are compared
    result = comparison.compare(*comparison.records("ds-a", "ds-c"))
    # Then the comparison says so, naming both products, and still compares what it can
    assert not result["same_product"]
    assert "ds-a and ds-c are not versions of one product: ds-a is of prod-1, ds-c of prod-2" in result["note"]
    assert [r["frame"] for r in result["frames"]] == ["f3"] and result["frames"][0]["identical"]
    assert {r["name"]: r["difference"] for r in result["qc"]}["light level, median"] == -10.0


def test_a_frame_that_cannot_be_compared_says_why_and_the_rest_are_compared(two_versions):
    # Given ds-b's frame of f3 has another shape, and its frame of f2 holds no image
    b = two_versions.datasets["ds-b"]
    two_versions.data[b["files"][1]["key"]] = np.zeros((3, 3), np.float32)
    del two_versions.data[b["files"][0]["key"]]
    comparison = VersionComparison(two_versions)
    result = comparison.compare(*comparison.records("ds-a", "ds-b"))
    # Then each says why, and they count as not comparable
    errors = {r["frame"]: r["error"] for r in result["frames"]}
    assert errors == {"f2": "s3://data/pid_1_23/ds-b/VBI_ds-b_0000_L1.fits holds no image",
                      "f3": "the frames' shapes differ: (16, 12) and (3, 3)"}
    assert result["frames_summary"]["not_comparable"] == 2


def test_a_missing_dataset_is_named_with_where_to_find_the_others(two_versions):
    with pytest.raises(NotFound, match="no dataset 'ds-zz'; `obsflow datasets list` shows the catalogued ones"):
        VersionComparison(two_versions).records("ds-a", "ds-zz")


# -- the monitor's page, from the comparison's dict ---------------------------------------------------------------
def test_the_monitor_page_shows_the_changes_qc_differences_and_frame_statistics(two_versions):
    comparison = VersionComparison(two_versions)
    page = views.compare_page(comparison.compare(*comparison.records("ds-a", "ds-b")))
    # Then both datasets are linked, the option and QC differences and the frames' statistics are on it
    assert 'href="/datasets/ds-a"' in page and 'href="/datasets/ds-b"' in page
    assert "options.l1_quantize_level" in page and 'id="qc-compared"' in page and "3.5" in page
    assert 'id="frames"' in page and "f2" in page and 'id="only-in-a"' in page and 'id="only-in-b"' in page


def test_a_dataset_page_links_each_other_version_s_comparison_the_older_first():
    # Given a dataset with an older and a newer version of its product
    detail = {"dataset_id": "ds-mid", "created_at": "2026-11-21", "files": [],
              "versions": [{"dataset_id": "ds-old", "status": "ACTIVE", "created_at": "2026-11-20"},
                           {"dataset_id": "ds-mid", "status": "ACTIVE", "created_at": "2026-11-21"},
                           {"dataset_id": "ds-new", "status": "ACTIVE", "created_at": "2026-11-22"}]}
    page = views.dataset_page(detail, None)
    # Then each other version links its comparison with this one, the older as A
    assert 'href="/compare/ds-old/ds-mid"' in page and 'href="/compare/ds-mid/ds-new"' in page
    assert "/compare/ds-mid/ds-mid" not in page


def test_a_ticket_links_only_the_monitor_s_own_pages():
    # Given a decision ticket linking its comparison, and one whose links point elsewhere
    rows = [{"ticket_id": "TKT-ds-b-decision", "status": "OPEN", "suggested_action": "compare them",
             "links": {"compare with ds-a": "/compare/ds-a/ds-b"}},
            {"ticket_id": "TKT-x", "status": "OPEN", "suggested_action": "look",
             "links": {"logs": "//evil.example/x", "execution": "javascript:alert(1)"}}]
    page = views.overview({"run_counts": {}, "ops": [], "candidates": [], "runs": [], "tickets": rows, "datasets": [],
                           "instances": [], "windows": [], "campaigns": []})
    # Then the comparison is a link, and nothing else is
    assert '<a href="/compare/ds-a/ds-b">compare with ds-a</a>' in page
    assert "evil.example" not in page and "javascript:" not in page
