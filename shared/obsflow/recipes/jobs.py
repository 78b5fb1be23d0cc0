"""Batch job settings per resource class: the same for the CDK app and the local stack."""

from __future__ import annotations

from obsflow.recipes.asl import job_definition_field
from obsflow.recipes.model import RESOURCE_CLASSES, Recipe
from obsflow.settings import Settings

# Fargate sizes (vCPU, MiB): valid Fargate combinations.
RESOURCES = {
    "default": ("1", "4096"),
    "high-memory": ("2", "16384"),
    "multi-core": ("4", "8192"),
}
VCPUS = {resource_class: float(vcpu) for resource_class, (vcpu, _) in RESOURCES.items()}
JOB_TIMEOUT_S = 4 * 3600


# Each state machine task overrides it with the whole command line.
DEFAULT_COMMAND = ["python", "-m", "obsflow_tasks", "--help"]


def job_definitions(settings: Settings, recipe: Recipe, developer_images: dict[str, str]) -> dict[str, str]:
    """The job definition of each resource class for a run of ``recipe``: a developer campaign's image, else the
    hosted pipeline's own image, else the stage's task image (keyed as StartRun's result names them)."""
    source = recipe.pipeline
    return {job_definition_field(rc): developer_images.get(rc) or (
        settings.pipeline_job_definition_name(source.package, source.version, rc) if source
        else settings.job_definition_name(rc)) for rc in RESOURCE_CLASSES}


def job_environment(settings: Settings, resource_class: str) -> dict[str, str]:
    return {**settings.environment(), "OBSFLOW_RESOURCE_CLASS": resource_class}


def job_container_properties(settings: Settings, resource_class: str, image: str) -> dict:
    vcpu, memory = RESOURCES[resource_class]
    return {
        "image": image,
        "command": DEFAULT_COMMAND,
        "resourceRequirements": [{"type": "VCPU", "value": vcpu}, {"type": "MEMORY", "value": memory}],
        "environment": [{"name": k, "value": v} for k, v in job_environment(settings, resource_class).items()],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": settings.task_log_group,
                                                                  "awslogs-stream-prefix": resource_class}},
    }


def job_retry_strategy() -> dict:
    """Batch retries a job lost to the infrastructure; a task's own failure goes to a ticket."""
    return {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onStatusReason": "CannotPullContainerError*", "action": "RETRY"},
            {"onStatusReason": "ResourceInitializationError*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
