"""`obsflow demo`, on a smaller night: everything it promises, end to end."""

from __future__ import annotations

import hashlib

import pytest

from obsflow.demo import run_demo

pytestmark = pytest.mark.e2e


def test_the_demo_processes_the_night_downloads_the_products_and_notifies_each_pi(tmp_path):
    lines: list[str] = []
    # When the demo runs a night of three candidates (3 observe frames of 32x32 each; two calibration sets
    # of 2 darks and 2 gains, one of them shared by two candidates)
    result = run_demo(lambda text="", nl=True: lines.append(text), shape=(32, 32), n_calibration=2, n_observe=3,
                      output=tmp_path)
    # Then the three science runs succeeded and every product is on disk, matching its SHA-256
    assert [r["run"]["status"] for r in result["runs"]] == ["SUCCEEDED"] * 3
    for run in result["runs"]:
        folder = tmp_path / run["folder"].split(str(tmp_path) + "/", 1)[1]
        sums = dict(reversed(line.split("  ")) for line in (folder / "SHA256SUMS").read_text().splitlines())
        assert len([n for n in sums if n.endswith("_L1.fits")]) == 3
        assert {"quality_report.pdf", "browse.mp4", "inventory.json"} <= set(sums)
        for name, digest in sums.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    # And each PI was told about their own science datasets, and the summary says where things are
    assert sorted(n["proposal_id"] for n in result["notifications"]) == ["pid_1_23", "pid_1_23", "pid_1_42"]
    # And each notification states when the dataset becomes public: pid_1_23 a year after the night (its proposal's
    # embargo_days), pid_1_42 at once (its release_date is the night itself)
    access = sorted((n["proposal_id"], n["release_date"], n["embargoed"]) for n in result["notifications"])
    assert access == [("pid_1_23", "2027-11-20", True)] * 2 + [("pid_1_42", "2026-11-20", False)]
    assert any("Under embargo until 2027-11-20 (public 365 days after observation)" in line for line in lines)
    # And the demo shows the shared calibration: one calibration instance above both science instances of pid_1_23
    tree = lines[lines.index(next(line for line in lines if "the processing catalogue of demo_vbi_001" in line)) + 1:]
    assert "vbi-calibration@1.1.0  SUCCEEDED" in tree[0]
    assert tree[1].lstrip().startswith("├── ") and "vbi-l1@3.1.0" in tree[1]
    assert any("vbi-night-summary@1.0.0  SUCCEEDED" in line for line in tree[:5])
    assert any("quarantined" in line and "_partial.fits" in line for line in lines)
    assert any(line.strip().endswith("browse.mp4") for line in lines)
    # And the second day is planned, running nothing: the three science datasets, reusing what the change misses
    # (the calibrated frames and the movie too: only the quality tasks and the stamping re-run), and the night
    # summaries made from them
    plan = result["plan"]
    direct = [i for i in plan["items"] if "made_from" not in i]
    assert sorted(i["dataset_id"] for i in direct) == sorted(r["dataset_id"] for r in result["runs"])
    assert all(i["tasks_reused"] == ["parse", "frames", "browse_movie"] for i in direct)
    assert {i["recipe_to"] for i in plan["items"] if "made_from" in i} == {"vbi-night-summary@1.0.0"}
    assert any("the second day" in line for line in lines)
