"""What the Lambda image holds: functions/requirements.txt agrees with pyproject.toml and is enough."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from obsflow.settings import BUCKETS, FUNCTIONS, Settings

ROOT = Path(__file__).resolve().parents[2]


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.match(r"^\s*\"?([A-Za-z0-9_.\-\[\],]+?)==([^\"\s]+)\"?,?\s*(#.*)?$", line)
        if match:
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return pins


def test_lambda_requirements_are_pinned_as_in_pyproject():
    # Given the Lambda requirements and the project's pins (and the lock of the local install for xray)
    requirements = (ROOT / "functions" / "requirements.txt").read_text().splitlines()
    lambda_pins = _pins(requirements)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    project_pins = _pins(project)
    # Then every requirement is pinned, and pinned as the project pins it
    assert all("==" in line for line in requirements if line.strip() and not line.startswith("#"))
    shared = set(lambda_pins) & set(project_pins)
    assert shared >= {"boto3", "pynamodb", "aws-lambda-powertools", "pydantic", "numpy", "astropy"}
    assert {name: lambda_pins[name] for name in shared} == {name: project_pins[name] for name in shared}


LOCAL_ONLY = ["moto", "matplotlib", "asdf", "av", "dkist_data_simulator", "click", "obsflow_tasks", "ccdproc"]


def run_in_an_image_without(absent: str, imports: str) -> subprocess.CompletedProcess:
    """Run ``imports`` in a fresh interpreter where a module is missing when ``absent`` (an expression in
    ``name``, its top-level package) is true, as in an image that does not install it."""
    script = f"""
import importlib, importlib.util, sys
absent = lambda name: bool({absent})
def missing(name):
    return absent(name.split(".")[0])
class NotInTheImage:
    def find_spec(self, name, path=None, target=None):
        if missing(name):
            raise ModuleNotFoundError("not in the image: " + name, name=name)
sys.meta_path.insert(0, NotInTheImage())
probe = importlib.util.find_spec  # libraries probe for optional packages: those read as absent
importlib.util.find_spec = lambda name, package=None: None if missing(name) else probe(name, package)
{imports}
print("ok")
"""
    return subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, cwd=ROOT)


def test_every_handler_imports_without_the_local_only_packages():
    # Given an interpreter where the packages the Lambda image lacks cannot be imported
    # When every handler module is imported
    completed = run_in_an_image_without(f"name in {LOCAL_ONLY!r}", f"""
for function in {list(FUNCTIONS)!r}:
    importlib.import_module("obsflow_functions." + function.replace("-", "_") + ".handler").handler""")
    # Then all import
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("ok")


def test_a_lambda_or_job_environment_gives_the_same_settings(monkeypatch):
    # Given a deployed stage's settings (buckets named per account and region)
    deployed = Settings(stage="prod", buckets={b: f"obsflow-prod-{b}-123456789012-eu-west-1" for b in BUCKETS},
                        account_id="123456789012", jira_secret_id="obsflow/jira")
    # When a process starts with only the variables the stack gives it
    for name in [n for n in os.environ if n.startswith("OBSFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in deployed.environment().items():
        monkeypatch.setenv(name, value)
    rebuilt = Settings()
    # Then it finds the same resources
    assert rebuilt.describe() == {**deployed.describe(), "region": rebuilt.region, "endpoint_url": rebuilt.endpoint_url}
    assert (rebuilt.account_id, rebuilt.jira_secret_id) == ("123456789012", "obsflow/jira")



def test_every_handler_imports_with_only_the_lambda_requirements_and_their_dependencies():
    from importlib import metadata

    from packaging.requirements import Requirement

    # Given the distributions pip installs into the image: the requirements and, through their own
    # requirements, everything they need (extras left out)
    closure, pending = set(), [Requirement(line.split("#")[0]).name for line in
                               (ROOT / "functions" / "requirements.txt").read_text().splitlines()
                               if line.split("#")[0].strip()]
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in closure:
            continue
        closure.add(name)
        for text in metadata.requires(name) or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    installed = sorted({module for module, dists in metadata.packages_distributions().items()
                        if any(d.lower().replace("_", "-") in closure for d in dists)}
                       | set(sys.stdlib_module_names) | {"obsflow", "obsflow_functions", "__main__"})
    # When every handler module, and every service the handlers build (services.py imports them when called), is
    # imported where nothing else can be (an optional import finds nothing)
    built = sorted(set(re.findall(r"from (obsflow[\w.]*) import", (ROOT / "shared/obsflow/services.py").read_text())))
    completed = run_in_an_image_without(f"not name.startswith('_') and name not in {installed!r}", f"""
for function in {list(FUNCTIONS)!r}:
    importlib.import_module("obsflow_functions." + function.replace("-", "_") + ".handler").handler
for module in {built!r}:
    importlib.import_module(module)""")
    # Then all import: a package missing from functions/requirements.txt fails here, not in AWS
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("ok")
