"""Every status obsflow records, once: the domain objects, the table models and the views import them from here.

Each entity's statuses, and (for runs, candidates and campaigns) the moves between them, are the ones in
obsflow.runs.transitions, where each move is documented.
"""

# Candidates: ingest makes one READY (complete, or released by the backstop); the runs layer plans it.
WAITING, READY, PLANNED, HELD = "WAITING", "READY", "PLANNED", "HELD"  # HELD: READY, but nothing can be planned
CANDIDATE_STATUSES = (WAITING, READY, PLANNED, HELD)

# Runs.
SUBMITTED, RUNNING, SUCCEEDED, FAILED = "SUBMITTED", "RUNNING", "SUCCEEDED", "FAILED"
MANUAL = "MANUAL"  # a manual-by-definition recipe: waits for `obsflow runs execute ID --manual`
RUN_CANCELLED = "CANCELLED"  # stopped for good by an operator, or never started: its campaign was cancelled
SKIPPED = "SKIPPED"  # queued when submission resumed without its backlog: waits for `obsflow runs requeue`
RUN_STATUSES = (READY, SUBMITTED, RUNNING, MANUAL, SUCCEEDED, FAILED, RUN_CANCELLED, SKIPPED)

# Recipe instances, after the Gemini archive's processing catalogue: derived from their runs.
NEVER_EXECUTED, WAITING_FOR_INPUT, QUEUED = "NEVER_EXECUTED", "WAITING", "QUEUED"
QUEUED_FOR_REEXECUTION, INSTANCE_RUNNING = "QUEUED_FOR_REEXECUTION", "RUNNING"
INSTANCE_SUCCEEDED, ERROR = "SUCCEEDED", "ERROR"  # ERROR: an error expected to persist until someone acts
INSTANCE_STATES = (NEVER_EXECUTED, WAITING_FOR_INPUT, QUEUED, QUEUED_FOR_REEXECUTION, INSTANCE_RUNNING,
                   INSTANCE_SUCCEEDED, ERROR)

# Tickets.
OPEN, RESOLVED = "OPEN", "RESOLVED"
TICKET_STATUSES = (OPEN, RESOLVED)

# Datasets. A developer campaign's: isolated, never a product version, deleted after its retention (EXPIRED).
ACTIVE, DEPRECATED, REJECTED = "ACTIVE", "DEPRECATED", "REJECTED"
DEVELOPMENT, EXPIRED = "DEVELOPMENT", "EXPIRED"
DATASET_STATUSES = (ACTIVE, DEPRECATED, REJECTED, DEVELOPMENT, EXPIRED)

# Master calibrations' certification (ESO: associations point to certified masters): a calibration dataset is
# UNCERTIFIED when catalogued with a gate failed (or no gates), and waits for a person; CERTIFIED when catalogued
# with every gate passed, or by `obsflow calibrations certify`; REJECTED by `obsflow calibrations reject`.
UNCERTIFIED, CERTIFIED, CERTIFICATION_REJECTED = "UNCERTIFIED", "CERTIFIED", REJECTED
CERTIFICATION_STATUSES = (UNCERTIFIED, CERTIFIED, CERTIFICATION_REJECTED)

# Campaigns: DRAFT -> (AWAITING_APPROVAL, a large one) -> RUNNING <-> PAUSED -> COMPLETED (every instance ended)
# -> ACCEPTED | REJECTED (data quality); DRAFT, AWAITING_APPROVAL, RUNNING or PAUSED -> CANCELLED.
DRAFT, CAMPAIGN_RUNNING, CAMPAIGN_PAUSED, CANCELLED = "DRAFT", "RUNNING", "PAUSED", "CANCELLED"
AWAITING_APPROVAL = "AWAITING_APPROVAL"  # started, estimated above the stage's approval size: no run starts yet
COMPLETED, ACCEPTED, CAMPAIGN_REJECTED = "COMPLETED", "ACCEPTED", REJECTED
CAMPAIGN_STATUSES = (DRAFT, AWAITING_APPROVAL, CAMPAIGN_RUNNING, CAMPAIGN_PAUSED, COMPLETED, ACCEPTED,
                     CAMPAIGN_REJECTED, CANCELLED)
