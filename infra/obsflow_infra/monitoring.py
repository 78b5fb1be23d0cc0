"""Monitoring: a dashboard of the ingest path and the runs, and alarms to the operators' topic."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from obsflow.observability import SERVICE
from obsflow_infra.config import StageConfig
from obsflow_infra.functions import ObsflowFunction
from obsflow_infra.ingest import Ingest

PERIOD = cdk.Duration.minutes(5)


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, ingest: Ingest,
                 state_machines: dict[str, sfn.StateMachine], functions: dict[str, ObsflowFunction],
                 operators: sns.ITopic) -> None:
        super().__init__(scope, id)
        dead_letters = ingest.dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum")
        ingest_errors = ingest.handler.function.metric_errors(period=PERIOD, statistic="Sum")
        failed_runs = cloudwatch.MathExpression(
            expression=" + ".join(f"failed{i}" for i in range(len(state_machines))) or "0",
            using_metrics={f"failed{i}": machine.metric_failed(period=PERIOD, statistic="Sum")
                           for i, machine in enumerate(state_machines.values())},
            label="Failed runs", period=PERIOD,
        )
        function_errors = {name: f.function.metric_errors(period=PERIOD, statistic="Sum") for name, f in functions.items()}

        def alarm(metric, construct_id: str, name: str, description: str, **periods) -> cloudwatch.Alarm:
            """Any one in the period (or ``periods``) alarms; no data is no alarm."""
            return metric.create_alarm(
                self, construct_id, alarm_name=f"obsflow-{config.stage}-{name}",
                alarm_description=description, threshold=1, **({"evaluation_periods": 1} | periods),
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)

        self.alarms = {
            "dead-letters": alarm(dead_letters, "DeadLetters", "ingest-dead-letters",
                                  "Ingest notifications failed 3 times and wait in the dead-letter queue. "
                                  "Read them, fix the cause, then redrive them to the ingest queue."),
            "ingest-errors": alarm(ingest_errors, "IngestErrors", "ingest-errors",
                                   "The ingest Lambda failed whole invocations (not single frames, which are "
                                   "retried or quarantined). Check its logs.", evaluation_periods=3,
                                   datapoints_to_alarm=2),
            "failed-runs": alarm(failed_runs, "FailedRuns", "failed-runs",
                                 "A recipe run failed; its ticket says what to do (`obsflow tickets list`)."),
            "release-errors": alarm(function_errors["release"], "ReleaseErrors", "release-errors",
                                    "The daily release job could not release every dataset whose embargo ended (they "
                                    "stay private). Check its logs, then `obsflow release` runs it again."),
        }
        for each in self.alarms.values():
            each.add_alarm_action(actions.SnsAction(operators))
            each.add_ok_action(actions.SnsAction(operators))

        def custom(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace=SERVICE, metric_name=name, dimensions_map={"service": SERVICE},
                                     period=PERIOD, statistic="Sum")

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"obsflow-{config.stage}")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Ingest: frames", width=12, left=[
                custom("FramesCounted"), custom("FramesDuplicate"), custom("ObjectsQuarantined"), custom("CandidatesReady")]),
            cloudwatch.GraphWidget(title="Ingest: queues", width=12, left=[
                ingest.queue.metric_approximate_number_of_messages_visible(period=PERIOD),
                ingest.queue.metric_approximate_age_of_oldest_message(period=PERIOD)], right=[dead_letters]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Runs", width=12, left=[
                custom("RunsPlanned"), custom("RunsStarted"), custom("RunsWaiting"), custom("RunsSucceeded"),
                custom("RunsFailed"), custom("TicketsOpened"), custom("DatasetsCatalogued")], right=[failed_runs]),
            cloudwatch.GraphWidget(title="Lambda errors", width=12, left=list(function_errors.values())),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", width=24, alarms=list(self.alarms.values())),
        )
