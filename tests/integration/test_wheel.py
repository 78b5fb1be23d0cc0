"""The wheel holds what the source tree holds: an editable install hides a package or data file left out of it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where each top-level package of the wheel comes from (pyproject.toml's package-dir).
SOURCES = {"obsflow": ROOT / "shared" / "obsflow", "obsflow_functions": ROOT / "functions",
           "obsflow_tasks": ROOT / "containers" / "pipeline" / "obsflow_tasks"}
DATA = ("*.py", "*.yaml", "*.json", "*.fits")


def test_the_wheel_holds_every_module_and_data_file_of_the_source_tree(tmp_path):
    # Given the wheel pip builds from the project's own files
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
                            str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("obsflow-*.whl")
    # When its contents are listed
    held = set(zipfile.ZipFile(wheel).namelist())
    # Then every module and data file under the three packages is in it, at its package's path
    expected = {f"{package}/{path.relative_to(source).as_posix()}"
                for package, source in SOURCES.items() for pattern in DATA for path in source.rglob(pattern)
                if "__pycache__" not in path.parts and "tests" not in path.relative_to(source).parts}
    missing = sorted(expected - held)
    assert not missing, f"the wheel lacks {missing[:10]}"
    # Including what hosted pipelines need: the scripts their own Python runs and their parameters' files
    assert {"obsflow/pipelines/host/run_node.py", "obsflow/pipelines/host/node_server.py",
            "obsflow/pipelines/parameters/dkist-processing-test/test_random_data.fits"} <= held
