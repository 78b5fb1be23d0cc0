"""A pipeline's own environment: a venv with the package at its published pins, never obsflow's environment.

DKIST's pipelines pin every distribution exactly (the ``[frozen]`` extra) and clash with obsflow's pins and
with each other, so each package version gets a venv of its own under the pipelines directory. It is built
once (a lock keeps two builders apart; a build that did not finish has no ``environment.json`` and is
built again) and then only read. On AWS the same install is a task image per pipeline version.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from obsflow.errors import ObsflowError
from obsflow.settings import Settings, get_settings

REQUIREMENT = re.compile(r"^(?P<package>[A-Za-z0-9][A-Za-z0-9._-]{0,99})==(?P<version>\d+\.\d+\.\d+)$")
MARKER = "environment.json"


class EnvironmentError_(ObsflowError):
    """A pipeline environment could not be built or read."""


@dataclass(frozen=True)
class Environment:
    package: str
    version: str
    path: Path
    description: dict  # environment.json: build time, size, workflows

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def workflows(self) -> list[dict]:
        return self.description["workflows"]


def parse_requirement(text: str) -> tuple[str, str]:
    """``dkist-processing-vbi==1.23.4`` -> (package, version); a pipeline is always an exact version."""
    found = REQUIREMENT.match(text.strip())
    if not found:
        raise EnvironmentError_(f"{text!r} is not PACKAGE==VERSION (an exact release, e.g. "
                                "dkist-processing-vbi==1.23.4): a pipeline runs as published, at one version")
    return found["package"].lower().replace("_", "-"), found["version"]


def pipelines_dir(settings: Settings) -> Path:
    """Where environments live: OBSFLOW_PIPELINES_DIR, else obsflow/pipelines under $XDG_DATA_HOME (shared by
    every local stage: an environment depends on the package version only)."""
    if settings.pipelines_dir:
        return Path(settings.pipelines_dir)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "obsflow" / "pipelines"


def environment_path(settings: Settings, package: str, version: str) -> Path:
    return pipelines_dir(settings) / f"{package}-{version}"


def host_script(name: str) -> Path:
    return Path(str(resources.files("obsflow.pipelines") / "host" / name))


def find(settings: Settings, package: str, version: str) -> Environment | None:
    path = environment_path(settings, package, version)
    try:
        description = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return Environment(package, version, path, description)


def _directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def read_workflows(python: Path, package: str) -> list[dict]:
    """The package's workflows, read by its own Python (``host/read_workflows.py``)."""
    module = package.replace("-", "_")
    completed = subprocess.run([str(python), str(host_script("read_workflows.py")), module],
                               capture_output=True, text=True, check=False, timeout=600)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-8:])
        raise EnvironmentError_(f"could not read the workflows of {package} (module {module}.workflows):\n{tail}")
    return json.loads(completed.stdout.strip().splitlines()[-1])["workflows"]


def build(settings: Settings, package: str, version: str, log=print) -> Environment:
    """The package version's environment, built now if it does not exist: python -m venv, then pip installs
    ``PACKAGE[frozen]==VERSION`` (its published pins) and the workflows are read."""
    root = pipelines_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    path = environment_path(settings, package, version)
    with open(root / f".{package}-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building it: wait, then use its build
        existing = find(settings, package, version)
        if existing is not None:
            return existing
        if path.exists():
            log(f"{path} holds a build that did not finish: building it again")
            shutil.rmtree(path)
        started = time.perf_counter()
        log(f"building {package}=={version}'s own environment in {path} (a venv, then pip; a minute or two) ...")
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        python = path / "bin" / "python"
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar",
                   "off", f"{package}[frozen]=={version}"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
            output = []
            for line in pip.stdout:
                output.append(line.rstrip())
                if line.startswith(("Collecting ", "Successfully installed")):
                    log(f"  {line.strip()[:120]}")
        if pip.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            errors = [line for line in output if "ERROR" in line] or output[-5:]
            raise EnvironmentError_(f"pip could not install {package}[frozen]=={version}: " + " | ".join(errors[-5:])
                                    + "; check the name and version on the package index")
        installed = time.perf_counter() - started
        workflows = read_workflows(python, package)
        description = {"package": package, "version": version, "python": str(python),
                       "build_seconds": round(installed, 1), "size_bytes": _directory_size(path),
                       "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "workflows": workflows}
        (path / MARKER).write_text(json.dumps(description, indent=1))
        log(f"built in {installed:.0f} s, {description['size_bytes'] / 1e9:.2f} GB; {len(workflows)} workflow(s)")
        return Environment(package, version, path, description)


def main(argv: list[str] | None = None) -> None:
    """``python -m obsflow.pipelines.environments PACKAGE==VERSION``: build the environment where the settings say
    (OBSFLOW_PIPELINES_DIR); a hosted pipeline's task image runs it when it is built."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        raise SystemExit("usage: python -m obsflow.pipelines.environments PACKAGE==VERSION")
    try:
        build(get_settings(), *parse_requirement(arguments[0]))
    except EnvironmentError_ as exc:
        raise SystemExit(str(exc)) from exc


if __name__ == "__main__":
    main()
