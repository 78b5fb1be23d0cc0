"""The runs layer's state machines as tables: every status reachable, every move documented, one vocabulary."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from obsflow import statuses
from obsflow.runs import transitions
from obsflow.runs.domain import Run
from tests.unit.test_run_service import add_candidate, make_service

SHARED = Path(__file__).resolve().parents[2] / "shared" / "obsflow"
# Words of other vocabularies that look like obsflow's: AWS Batch's job statuses, pip's output.
OTHER_VOCABULARIES = {"local/moto_patches/batch.py", "pipelines/environments.py"}


@pytest.mark.parametrize("entity", sorted(transitions.MACHINES))
def test_every_status_of_an_entity_is_reached_and_every_move_says_what_makes_it(entity):
    moves, vocabulary = transitions.MACHINES[entity]
    # Given its table: every move goes between statuses of its vocabulary, and says what makes it
    for name, move in moves.items():
        assert move.to in vocabulary and set(move.sources) <= set(vocabulary), name
        assert len(move.by) > 10, name
    # Then every status but the first (where it is created) is reached by a move
    assert set(vocabulary) - {vocabulary[0]} <= {m.to for m in moves.values()}
    # And the document names each status once, with the moves into and out of it
    document = transitions.document(entity)
    assert [line.split(":")[0] for line in document] == list(vocabulary)


@pytest.mark.parametrize("entity", sorted(transitions.MACHINES))
def test_the_readme_shows_each_state_machine_as_its_table_says(entity):
    # Given the README, When its "State machines" section is read, Then it holds the table as the code has it
    readme = (SHARED.parents[1] / "README.md").read_text()
    assert transitions.markdown(entity) in readme, f"regenerate with obsflow.runs.transitions.markdown({entity!r})"


def test_a_run_moves_only_by_its_table():
    # Given a READY run
    service = make_service()
    add_candidate(service, "c1")
    run_id = service.submit().started[0]
    # When a move is asked from a status it does not start from, nothing moves
    assert service.move_run(run_id, "finish") is False and service.store.runs[run_id].status == "SUBMITTED"
    # And a move from its status moves it, with its history
    assert service.move_run(run_id, "start", "arn") is True
    run: Run = service.store.runs[run_id]
    assert run.status == "RUNNING" and run.history[-1].detail == "arn"


def test_statuses_are_defined_once_and_code_uses_the_names():
    # Given every module of the package but the vocabulary itself
    defined = {value for name, value in vars(statuses).items() if name.isupper() and isinstance(value, str)}
    offenders = []
    for path in SHARED.rglob("*.py"):
        if path.name == "statuses.py" or str(path.relative_to(SHARED)) in OTHER_VOCABULARIES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            # Then no module assigns a status string to a name of its own
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value in defined \
                    and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
                offenders.append(f"{path.relative_to(SHARED)}:{node.lineno}")
            # And no comparison is with a bare status string
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    values = [side] if isinstance(side, ast.Constant) else list(getattr(side, "elts", []))
                    if any(isinstance(v, ast.Constant) and v.value in defined and re.fullmatch(r"[A-Z_]+", str(v.value))
                           for v in values):
                        offenders.append(f"{path.relative_to(SHARED)}:{node.lineno}")
    assert offenders == []
