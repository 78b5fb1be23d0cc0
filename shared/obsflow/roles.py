"""Who may do what: the roles an operator recognises, and for each action of the `obsflow` command which roles
may take it.

On AWS the roles are IAM roles of the stage (infra/obsflow_infra/roles.py) and IAM enforces them. Locally the
command acts as the role named in ``OBSFLOW_ROLE`` and refuses, naming the role and the roles that may, what that
role may not do. With ``OBSFLOW_ROLE`` unset it acts as the single operator of a local stack, who may do
everything (as before roles existed): the local check guards against mistakes, it is not a security boundary
(anyone at the keyboard can change an environment variable).

Two rules are finer than an action: a developer's campaign actions are for developer campaigns only, and a PI
reads only its own proposal's datasets (``OBSFLOW_PROPOSAL``) and released ones. ``LIMITS`` says which actions they
narrow; the commands apply them to what they read (``Actor.check_campaign``, ``Actor.may_read``).
"""

from __future__ import annotations

from dataclasses import dataclass

OPERATOR, DATA_QUALITY, DEVELOPER, PIPELINE_MANAGER, PI_READ = (
    "operator", "data-quality", "developer", "pipeline-manager", "pi-read")
ROLES = (OPERATOR, DATA_QUALITY, DEVELOPER, PIPELINE_MANAGER, PI_READ)

DUTIES = {
    OPERATOR: "runs, tickets, pause and resume, processing windows, campaigns, ingest; approves large campaigns",
    DATA_QUALITY: "dataset decisions, calibration certification, bad frames and tags, campaign accept, reject and "
                  "approve",
    DEVELOPER: "developer campaigns only (--type developer, outputs under dev/<campaign>/ of the data bucket); "
               "reruns",
    PIPELINE_MANAGER: "recipes, parameter values, discovery rules, hosted pipelines",
    PI_READ: "reads its own proposal's datasets (OBSFLOW_PROPOSAL) and released ones, nothing else",
}

STAFF = (OPERATOR, DATA_QUALITY, DEVELOPER, PIPELINE_MANAGER)  # read everything of the stage
EVERYONE = ROLES

# action (the command's words after `obsflow`) -> the roles that may take it. Everything the command does that
# touches a stage is here (tests/unit/test_roles.py checks it); an action not listed is refused to every role.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    # reading the stage
    "info": EVERYONE,
    "monitor": STAFF,
    "frames list": STAFF, "ops list": STAFF, "ops show": STAFF, "proposals list": STAFF, "proposals show": STAFF,
    "candidates list": STAFF, "candidates show": STAFF, "dlq list": STAFF,
    "runs list": STAFF, "runs show": STAFF, "runs outputs": STAFF, "tickets list": STAFF,
    "catalogue list": STAFF, "catalogue show": STAFF, "catalogue tree": STAFF,
    "calibrations list": STAFF, "calibrations for": STAFF,
    "campaigns list": STAFF, "campaigns show": STAFF, "tags list": STAFF, "windows show": STAFF,
    "costs": STAFF, "capacity": STAFF,
    "recipes list": EVERYONE, "recipes show": EVERYONE, "rules show": EVERYONE, "pipelines list": EVERYONE,
    "pipelines show": EVERYONE, "docs build": EVERYONE,
    "datasets list": EVERYONE, "datasets show": EVERYONE, "datasets provenance": EVERYONE,
    "datasets download": EVERYONE, "datasets compare": EVERYONE,
    # operations
    "upload": (OPERATOR,), "dlq redrive": (OPERATOR,), "backstop": (OPERATOR,), "release": (OPERATOR,),
    "pause": (OPERATOR,), "resume": (OPERATOR,),
    "runs retry": (OPERATOR,), "runs redrive": (OPERATOR,), "runs cancel": (OPERATOR,), "runs prioritize": (OPERATOR,),
    "runs requeue": (OPERATOR,),
    "runs execute": (OPERATOR,), "tickets resolve": (OPERATOR, DATA_QUALITY), "catalogue replan": (OPERATOR,),
    # campaigns: a developer's are developer campaigns only (LIMITS)
    "reprocess plan": (OPERATOR, DATA_QUALITY, DEVELOPER), "reprocess start": (OPERATOR,),
    "campaigns create": (OPERATOR, DEVELOPER), "campaigns edit": (OPERATOR, DEVELOPER),
    "campaigns start": (OPERATOR, DEVELOPER), "campaigns pause": (OPERATOR, DEVELOPER),
    "campaigns resume": (OPERATOR, DEVELOPER), "campaigns cancel": (OPERATOR, DEVELOPER),
    "campaigns attach": (OPERATOR, DATA_QUALITY, DEVELOPER), "campaigns sweep": (OPERATOR,),
    "campaigns occur": (OPERATOR,),
    "runs rerun": (OPERATOR, DEVELOPER),
    # data quality
    "datasets decide": (DATA_QUALITY,), "datasets reindex-qc": (DATA_QUALITY,), "calibrations certify": (DATA_QUALITY,), "calibrations reject": (DATA_QUALITY,),
    "frames mark-bad": (DATA_QUALITY,), "frames unmark-bad": (DATA_QUALITY,), "tags add": (DATA_QUALITY,),
    "campaigns accept": (DATA_QUALITY,), "campaigns reject": (DATA_QUALITY,),
    "campaigns approve": (DATA_QUALITY, OPERATOR),
    # what runs: recipes, values, rules, pipelines
    "recipes register": (PIPELINE_MANAGER,), "recipes set-value": (PIPELINE_MANAGER,),
    "rules register": (PIPELINE_MANAGER,), "pipelines add": (PIPELINE_MANAGER,),
}

DEVELOPER_CAMPAIGNS_ONLY = "developer campaigns only"
OWN_PROPOSAL_OR_RELEASED = "its own proposal's (OBSFLOW_PROPOSAL) and released datasets only"
# role -> action -> how the role's permission is narrowed (checked on what the command reads).
LIMITS: dict[str, dict[str, str]] = {
    DEVELOPER: {action: DEVELOPER_CAMPAIGNS_ONLY for action in (
        "campaigns create", "campaigns edit", "campaigns start", "campaigns pause", "campaigns resume",
        "campaigns cancel", "campaigns attach")},
    PI_READ: {action: OWN_PROPOSAL_OR_RELEASED for action in (
        "datasets list", "datasets show", "datasets provenance", "datasets download", "datasets compare")},
}

MAX_SHOWN = 40  # characters of an unknown role's name repeated back


class UnknownRole(ValueError):
    pass


class Refused(Exception):
    """The role may not do this; the message names the role, who may, and what to do next."""


def check_role(value: str | None) -> str | None:
    """A role name from the environment; None (unset or empty) is the local stack's single operator."""
    if value is None or value == "":
        return None
    if value not in ROLES:
        shown = value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "..."
        raise UnknownRole(f"{shown!r} is not a role; roles: {', '.join(ROLES)} (unset OBSFLOW_ROLE to act as the "
                          "single operator of a local stack)")
    return value


def who_may(action: str) -> tuple[str, ...]:
    return PERMISSIONS.get(action, ())


@dataclass(frozen=True)
class Actor:
    """Who the command acts as: a role (None: the single operator of a local stack) and, for a PI, its proposal."""

    role: str | None = None
    proposal: str | None = None

    def __post_init__(self):
        check_role(self.role)

    @property
    def name(self) -> str:
        return self.role or "operator (no OBSFLOW_ROLE: the local stack's single operator)"

    def may(self, action: str) -> bool:
        return self.role is None or self.role in who_may(action)

    def check(self, action: str) -> None:
        if self.may(action):
            return
        allowed = who_may(action)
        if not allowed:
            raise Refused(f"role {self.role} may not `obsflow {action}`: it is in no role's permissions "
                          "(obsflow.roles.PERMISSIONS)")
        raise Refused(f"role {self.role} may not `obsflow {action}`: only {' or '.join(allowed)} may. Ask someone "
                      f"who holds that role, or set OBSFLOW_ROLE={allowed[0]} if you do (a {self.role}'s part: "
                      f"{DUTIES[self.role]})")

    def check_campaign(self, action: str, campaign_type: str, name: str = "") -> None:
        """A developer's campaign actions are for developer campaigns only."""
        self.check(action)
        if LIMITS.get(self.role or "", {}).get(action) == DEVELOPER_CAMPAIGNS_ONLY and campaign_type != "developer":
            what = f"campaign {name} is a {campaign_type} campaign" if name else f"--type {campaign_type}"
            raise Refused(f"role developer may not `obsflow {action}` here: {what}, and a developer's campaigns are "
                          f"developer campaigns only (--type developer); only "
                          f"{' or '.join(r for r in who_may(action) if r != DEVELOPER)} may")

    def may_read(self, proposal_id: str | None, released: bool) -> bool:
        """A PI reads its own proposal's datasets and released ones; every other role reads all."""
        if self.role != PI_READ:
            return True
        return released or (self.proposal is not None and proposal_id == self.proposal)

    def check_read(self, dataset_id: str, proposal_id: str | None, released: bool, release_date: str | None) -> None:
        if not self.may_read(proposal_id, released):
            mine = f"proposal {self.proposal}'s" if self.proposal else "no proposal's (OBSFLOW_PROPOSAL is unset)"
            raise Refused(f"role pi-read reads {mine} datasets and released ones; {dataset_id} is proposal "
                          f"{proposal_id}'s, under embargo until {release_date or 'its release'}")
