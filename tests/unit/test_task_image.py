"""The task image is lean: it installs only what the tasks import, pinned as the project pins it.

Fargate keeps no image cache, so every job pulls the image: its size is start-up time. No Docker
engine runs here, so the size is computed from what the Dockerfile installs, with the sizes of
the same distributions installed in this environment (x86_64 wheels; the arm64 ones are similar).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.unit.test_lambda_package import _pins, run_in_an_image_without

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "containers" / "pipeline" / "requirements.txt"
BUDGET_MB = 400


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def image_distributions() -> dict[str, metadata.Distribution]:
    """requirements.txt and everything it requires (no extras), as installed here."""
    found: dict[str, metadata.Distribution] = {}
    wanted = [Requirement(line).name for line in REQUIREMENTS.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    while wanted:
        name = _name(wanted.pop())
        if name in found:
            continue
        found[name] = distribution = metadata.distribution(name)
        for requirement in map(Requirement, distribution.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return found


def installed_bytes(distribution: metadata.Distribution) -> int:
    # pip --no-compile and PYTHONDONTWRITEBYTECODE: the image holds no .pyc files
    return sum(f.size or 0 for f in distribution.files or [] if f.suffix != ".pyc")


def test_the_image_installs_its_requirements_then_obsflow_without_dependencies():
    dockerfile = (ROOT / "containers/pipeline/Dockerfile").read_text()
    commands = [line.strip() for line in dockerfile.splitlines() if "pip install" in line]
    assert commands == ["RUN pip install --no-compile -r requirements.txt",
                        "RUN pip install --no-compile --no-deps . \\",
                        "RUN pip install --no-compile -c requirements.txt -r requirements-dkist.txt"]
    # And every requirement is pinned as pyproject.toml pins it
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    pinned = _pins(lines)
    project = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert len(pinned) == len(lines) and {name: project.get(name) for name in pinned} == pinned


def test_a_hosted_pipelines_image_adds_the_dkist_extra_as_pyproject_pins_it():
    # Given the hosted pipeline's stage of the Dockerfile and the project's `dkist` extra
    dockerfile = (ROOT / "containers/pipeline/Dockerfile").read_text()
    extra = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dkist"])
    lines = [line for line in (REQUIREMENTS.parent / "requirements-dkist.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    # Then it installs exactly the extra's pins, builds the pipeline's own venv, and the task image stays the default
    assert _pins(lines) == extra and len(lines) == len(extra)
    hosted = dockerfile.split("FROM tasks AS hosted-pipeline", 1)[1]
    assert 'RUN python -m obsflow.pipelines.environments "${PIPELINE}"' in hosted
    assert dockerfile.rstrip().splitlines()[-1] == "FROM tasks"


def test_the_image_leaves_out_the_local_stack_the_simulator_and_the_cdk():
    names = set(image_distributions())
    assert not names & {"moto", "dkist-data-simulator", "aws-cdk-lib", "click", "aws-lambda-powertools", "flask",
                        "imageio-ffmpeg", "sunpy", "scipy", "pytest"}


def test_every_task_imports_with_only_what_the_image_installs():
    # Given an interpreter that can import only the standard library, obsflow and the image's distributions
    provided = {_name(d) for d in image_distributions()}
    allowed = {module for module, dists in metadata.packages_distributions().items()
               if any(_name(d) in provided for d in dists)} | {"obsflow", "obsflow_tasks", "obsflow_functions"}
    # When the runtime, the warm-up module and every shipped recipe's task entrypoints are imported
    completed = run_in_an_image_without(
        f"name not in {allowed!r} and name not in sys.stdlib_module_names and not name.startswith('_')", """
from obsflow.recipes.definitions import RECIPES
for recipe in RECIPES:
    for task in recipe.tasks:
        module, name = task.entrypoint.split(":")
        getattr(importlib.import_module(module), name)
import obsflow_tasks.runtime, obsflow_tasks.warm""")
    # Then they all import
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("ok")


def test_what_the_image_installs_stays_under_400_mb(capsys):
    distributions = image_distributions()
    sizes = {name: installed_bytes(d) for name, d in distributions.items()}
    own = sum(p.stat().st_size for folder in ("shared/obsflow", "functions", "containers/pipeline/obsflow_tasks")
              for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts)
    total = sum(sizes.values()) + own
    with capsys.disabled():
        largest = ", ".join(f"{name} {size / 1e6:.1f}" for name, size in sorted(sizes.items(), key=lambda i: -i[1])[:6])
        print(f"\ntask image installs {total / 1e6:.1f} MB in {len(sizes)} distributions (largest, MB: {largest})")
    assert total < BUDGET_MB * 1e6
