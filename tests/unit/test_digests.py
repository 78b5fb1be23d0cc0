"""Task digests: what changes re-run a task, and what leaves it reusable."""

from __future__ import annotations

from obsflow.recipes.definitions import RECIPES
from obsflow.runs.digests import inputs_digest, task_digests

CENSUS = next(r for r in RECIPES if r.key == "frame-census@1.0.0")
FRAMES = {"frames": [{"file_id": f"f{i}", "role": "observe", "bucket": "ingest", "key": f"raw/op/f{i}.fits",
                      "version_id": "v1", "etag": f"e{i}"} for i in range(3)], "upstream": []}


def digests(run_id="run-1", saturation=60000, frames=FRAMES, code="0.1.0", image=""):
    configuration = {"parameters": {"saturation_level": saturation}, "options": {}}
    return task_digests(CENSUS, configuration, inputs_digest(frames), code, run_id, image)


def test_another_run_with_the_same_inputs_reuses_every_task_that_declares_reuse():
    # Given two runs of the same inputs, configuration and code
    first, second = digests("run-1"), digests("run-2")
    # Then the reusable tasks have the same digests; summary, which names its run, does not
    assert {t for t in first if first[t] == second[t]} == {"inventory", "dark_level", "observe_stats"}


def test_a_changed_parameter_changes_the_tasks_that_use_it_and_those_below_them():
    # When saturation_level, used only by observe_stats, changes
    before, after = digests(), digests(saturation=62000)
    # Then observe_stats and summary (below it) change; inventory and dark_level do not
    assert {t for t in before if before[t] != after[t]} == {"observe_stats", "summary"}


def test_a_new_frame_version_a_new_release_or_another_task_image_changes_every_task():
    edited = {**FRAMES, "frames": [{**FRAMES["frames"][0], "version_id": "v2"}, *FRAMES["frames"][1:]]}
    base = digests()
    for changed in (digests(frames=edited), digests(code="0.2.0"), digests(image="sha256:abc")):
        assert all(base[t] != changed[t] for t in base)


def test_the_inputs_digest_ignores_what_names_the_instance_but_not_what_the_tasks_read():
    # A copy of an instance (another id, candidate, recipe version) with the same frames has the same inputs
    copy = {**FRAMES, "instance_id": "ri-copy", "candidate_id": "c9", "recipe_version": "1.1.0"}
    assert inputs_digest(copy) == inputs_digest(FRAMES)
    upstream = {**FRAMES, "upstream": [{"role": "calibration", "files": [{"name": "gain.fits", "sha256": "a"}]}]}
    redone = {**FRAMES, "upstream": [{"role": "calibration", "files": [{"name": "gain.fits", "sha256": "b"}]}]}
    assert inputs_digest(upstream) != inputs_digest(redone)
