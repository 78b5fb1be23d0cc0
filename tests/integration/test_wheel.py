"""The wheel holds what the source tree holds: an editable install hides a package or data file left out of it."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where each top-level package of the wheel comes from (setup.py's roots).
SOURCES = {"obsflow": ROOT / "shared" / "obsflow", "obsflow_functions": ROOT / "functions",
           "obsflow_tasks": ROOT / "containers" / "pipeline" / "obsflow_tasks"}
DATA = ("*.py", "*.yaml", "*.json", "*.fits")
# Scripts a hosted pipeline's own Python runs (they import DKIST's framework, which obsflow's environment lacks).
PIPELINE_SIDE = "obsflow.pipelines.host"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from the project's own files, and what building it printed."""
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (found,) = out.glob("obsflow-*.whl")
    (out / "build.log").write_text(built.stdout + built.stderr)
    return found


def test_the_wheel_holds_every_module_and_data_file_of_the_source_tree(wheel):
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
    # And building it warned of nothing (a package left out of the configuration warns)
    assert "BuildBackendWarning" not in (wheel.parent / "build.log").read_text()


def test_the_wheel_installed_alone_imports_every_module_and_runs_its_entry_point(wheel, tmp_path):
    # Given a fresh venv with the wheel installed (its dependencies from this environment, not its source tree)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # its .pth files are not read
    # When every module of the three packages is imported there, away from the source tree
    script = f"""
import importlib, pkgutil, sys
for root in ("obsflow", "obsflow_functions", "obsflow_tasks"):
    package = importlib.import_module(root)
    assert package.__file__.startswith({str(site)!r}), package.__file__
    for module in pkgutil.walk_packages(package.__path__, root + "."):
        if not module.name.startswith({PIPELINE_SIDE!r}) and not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
print(len(sys.modules))
"""
    imported = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    # Then all import from the installed wheel
    assert imported.returncode == 0, imported.stderr[-3000:]
    # And its console script, as its metadata declares it, answers
    script = ("import sys; from importlib.metadata import entry_points; sys.argv = ['obsflow', '--help']; "
              "entry_points(group='console_scripts')['obsflow'].load()()")
    answered = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert answered.returncode == 0 and "pipelines" in answered.stdout, answered.stderr[-2000:]
