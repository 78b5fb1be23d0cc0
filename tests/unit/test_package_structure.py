"""The package's import graph has no cycles, only the adapters of the runs layer touch AWS, and records saved whole
fit their tables."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "obsflow"


def module_name(path: Path) -> str:
    parts = ["obsflow", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the obsflow modules it imports (at module level or inside functions)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_module_of_the_package_imports_another_in_a_cycle():
    # Given every import in shared/obsflow, When the graph is searched, Then it has no cycle
    graph = import_graph()
    assert "obsflow.runs.service" in graph and graph["obsflow.runs.service"]
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def aws_or_tables(imported: set[str]) -> set[str]:
    return {name for name in imported
            if name.split(".")[0] in ("boto3", "botocore", "pynamodb") or name.startswith(("obsflow.tables", "obsflow.aws"))}


def test_the_run_service_and_its_domain_import_no_aws_client_and_no_table():
    # The service sees ports and domain objects; boto3, pynamodb and the table models stay in the adapters
    for module in ("service", "domain", "ports", "records", "failures"):
        forbidden = aws_or_tables(imported_modules(PACKAGE / "runs" / f"{module}.py"))
        assert not forbidden, f"runs/{module}.py imports {sorted(forbidden)}"


def test_the_read_models_see_their_ports_alone_and_the_runs_layer_never_reads_through_them():
    # Given the read side: its read models over its ports, its adapter on the tables (reads/store.py)
    for module in ("ports", "catalogue", "provenance", "queries"):
        imported = imported_modules(PACKAGE / "reads" / f"{module}.py")
        # Then no read model imports a table model, an AWS client or the adapter
        forbidden = aws_or_tables(imported) | {name for name in imported if name.endswith(".store")}
        assert not forbidden, f"reads/{module}.py imports {sorted(forbidden)}"
    # And the runs layer (the write side) asks the read side through its own ports only (runs.ports.DatasetQuery)
    graph = import_graph()
    reaching_up = {module for module, targets in graph.items() if module.startswith("obsflow.runs.")
                   and any(target.startswith("obsflow.reads") for target in targets)}
    assert not reaching_up, sorted(reaching_up)


HEAVY = ("astropy", "dkist_header_validator", "numpy", "boto3", "pynamodb")


def modules_loaded_by(code: str, env: dict | None = None) -> set[str]:
    """Which of HEAVY a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    return set(done.stdout.split())


def test_the_cli_imports_only_what_a_command_uses():
    # When `obsflow --help` runs, Then no AWS SDK, FITS library or array library is loaded
    help_only = "from click.testing import CliRunner\nfrom obsflow.cli import main\nCliRunner().invoke(main, ['--help'])"
    assert modules_loaded_by(help_only) == set()
    # And the read side a listing uses (queries, stores) loads the AWS SDK but no FITS library
    assert modules_loaded_by("import obsflow.reads.store, obsflow.ingest.store") == {"boto3", "pynamodb"}


def test_no_lambda_handler_loads_astropy_on_import():
    # Given every deployed handler, When it is imported as Lambda imports it, Then astropy is not loaded
    # (the ingest handler loads it with its first header)
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent), "AWS_DEFAULT_REGION": "us-east-1"}
    for handler in sorted((PACKAGE.parents[1] / "functions").glob("*/handler.py")):
        load = ("import importlib.util\n"
                f"spec = importlib.util.spec_from_file_location('handler', {str(handler)!r})\n"
                "spec.loader.exec_module(importlib.util.module_from_spec(spec))")
        assert "astropy" not in modules_loaded_by(load, env), handler.parent.name


@pytest.mark.parametrize("record,model", [("Campaign", "CampaignItem"), ("Ticket", "TicketItem")])
def test_a_record_saved_whole_has_an_attribute_in_its_table_for_each_field(record, model):
    # Given a domain record the store saves whole (store.item_of), and its table model
    import dataclasses

    from obsflow.runs import domain
    from obsflow.tables.campaigns import CampaignItem
    from obsflow.tables.tickets import TicketItem

    fields = {f.name for f in dataclasses.fields(getattr(domain, record))}
    attributes = set({"CampaignItem": CampaignItem, "TicketItem": TicketItem}[model].get_attributes())
    # Then every field has its attribute (a field without one fails only when the table is real)
    assert fields <= attributes, sorted(fields - attributes)
