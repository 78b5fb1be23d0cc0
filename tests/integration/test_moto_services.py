"""The local stack's changes to moto's Batch, Step Functions and Lambda, each tried directly: jobs run their
command and end by its exit code with their output logged; a state machine submits Batch jobs and catches a
failed one inside a Parallel; an invocation runs the deployed handler in this process."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from obsflow.local import lambda_runtime, moto_patches
from obsflow.local.moto_patches import awslambda as moto_awslambda
from obsflow.local.stack import MOTO_CONFIG

REGION = "us-east-1"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                  "Principal": {"Service": "batch.amazonaws.com"}}]}


@pytest.fixture
def aws():
    moto_patches.apply()
    with mock_aws(config=MOTO_CONFIG):
        session = boto3.Session(region_name=REGION)
        session.client("iam").create_role(RoleName="local", AssumeRolePolicyDocument=json.dumps(TRUST))
        yield session


ROLE = "arn:aws:iam::123456789012:role/local"


@pytest.fixture
def batch(aws):
    """Given a job queue and a job definition whose command is python running the code it is given."""
    client = aws.client("batch")
    environment = client.create_compute_environment(computeEnvironmentName="tasks", type="UNMANAGED",
                                                    state="ENABLED", serviceRole=ROLE)["computeEnvironmentArn"]
    client.create_job_queue(jobQueueName="queue", state="ENABLED", priority=1,
                            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])
    client.register_job_definition(
        jobDefinitionName="python", type="container", platformCapabilities=["EC2"],
        containerProperties={"image": "obsflow-pipeline:local", "command": ["python", "-c", "pass"],
                             "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
                             "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/tasks"}}})
    return client


def run_code(code: str) -> list[str]:
    return ["python", "-c", code]


def finished(batch, job_id: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        [job] = batch.describe_jobs(jobs=[job_id])["jobs"]
        if job["status"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_a_batch_job_runs_its_command_and_ends_by_its_exit_code_with_its_output_logged(aws, batch):
    # When two jobs run, one exiting 0 and one exiting 3 after printing
    good = batch.submit_job(jobName="good", jobQueue="queue", jobDefinition="python",
                            containerOverrides={"command": run_code("print('calibrated 8 frames')")})["jobId"]
    bad = batch.submit_job(jobName="bad", jobQueue="queue", jobDefinition="python",
                           containerOverrides={"command": run_code("import sys; print('dark missing'); sys.exit(3)")})["jobId"]
    # Then each ends by its exit code, which DescribeJobs reports
    good_job, bad_job = finished(batch, good), finished(batch, bad)
    assert (good_job["status"], good_job["container"]["exitCode"]) == ("SUCCEEDED", 0)
    assert (bad_job["status"], bad_job["container"]["exitCode"]) == ("FAILED", 3)
    # And its output is in the job definition's log group, under the job's stream
    events = aws.client("logs").get_log_events(logGroupName="/tasks", logStreamName=bad_job["container"]["logStreamName"])
    assert [e["message"] for e in events["events"]] == ["dark missing"]


def test_a_state_machine_submits_batch_jobs_and_a_parallel_catches_a_failed_one(aws, batch):
    # Given a state machine that runs a job with PascalCase parameters, then a failing one inside a Parallel
    def job(name: str, code: str, then: dict) -> dict:
        return {"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync", **then,
                "Parameters": {"JobName": name, "JobQueue": "queue", "JobDefinition": "python",
                               "ContainerOverrides": {"Command": run_code(code)}}}

    definition = {"StartAt": "First", "States": {
        "First": job("first", "print('ok')", {"Next": "Both", "ResultPath": "$.first"}),
        "Both": {"Type": "Parallel", "Next": "Done", "Branches": [
            {"StartAt": "Failing", "States": {"Failing": job("failing", "raise SystemExit(2)", {"End": True})}}],
            "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught", "ResultPath": "$.error"}]},
        "Caught": {"Type": "Pass", "Result": "caught", "ResultPath": "$.outcome", "End": True},
        "Done": {"Type": "Pass", "End": True},
    }}
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name="jobs", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    # When it runs
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.2)
    # Then the first job ran to SUCCEEDED and the failed one was caught as States.TaskFailed on the Parallel
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["first"]["Status"] == "SUCCEEDED"
    assert output["error"]["Error"] == "States.TaskFailed" and output["outcome"] == "caught"


def test_a_lambda_invocation_runs_the_deployed_handler_here_and_reports_its_exception(aws, monkeypatch):
    # Given a deployed start-run function whose handler echoes its event, or fails on a bad one
    def handler(event, context):
        if "run_id" not in event:
            raise KeyError("run_id")
        return {"started": event["run_id"], "function": context.function_name}

    monkeypatch.setattr(lambda_runtime, "load_handler", lambda function: handler)
    awslambda = aws.client("lambda")
    awslambda.create_function(FunctionName="obsflow-test-start-run", Runtime="python3.11", Role=ROLE,
                              Handler="handler.handler", Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18})
    # When it is invoked with a good and a bad event
    good = awslambda.invoke(FunctionName="obsflow-test-start-run", Payload=json.dumps({"run_id": "r1"}))
    bad = awslambda.invoke(FunctionName="obsflow-test-start-run", Payload=b"{}")
    # Then the handler's result comes back, and its exception as Lambda's error payload
    assert json.loads(good["Payload"].read()) == {"started": "r1", "function": "obsflow-test-start-run"}
    assert bad.get("FunctionError")  # moto names every error "Handled"; AWS says "Unhandled" here
    assert json.loads(bad["Payload"].read())["errorType"] == "KeyError"


def test_an_asynchronous_invocation_is_answered_at_once_and_a_reserved_function_runs_one_at_a_time_however_invoked(
        aws, monkeypatch):
    # Given a submitter with reserved concurrency 1 whose handler holds each pass until it is let go, and whose
    # queue's thread ends after 0.2 s without events
    monkeypatch.setattr(moto_awslambda, "IDLE_S", 0.2)
    let_go, started, running, most = threading.Event(), [], [0], [0]
    lock = threading.Lock()

    def handler(event, context):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            started.append(event["nudge"])
        let_go.wait(10)
        with lock:
            running[0] -= 1

    monkeypatch.setattr(lambda_runtime, "load_handler", lambda function: handler)
    awslambda = aws.client("lambda")
    awslambda.create_function(FunctionName="obsflow-test-submitter", Runtime="python3.11", Role=ROLE,
                              Handler="handler.handler", Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18})
    awslambda.put_function_concurrency(FunctionName="obsflow-test-submitter", ReservedConcurrentExecutions=1)
    # When it is nudged three times while the first pass is held
    answers = [awslambda.invoke(FunctionName="obsflow-test-submitter", InvocationType="Event",
                                Payload=json.dumps({"nudge": str(index)}))["StatusCode"] for index in range(3)]
    # Then every nudge was answered (202) while the first pass was held, and only it started
    _until(lambda: started)
    assert answers == [202, 202, 202] and started == ["0"]
    # And a pass the schedule starts directly (not through the Invoke API) waits its turn as well
    schedule = threading.Thread(target=lambda_runtime.invoke_local, args=("obsflow-test-submitter",
                                                                         {"nudge": "schedule"}))
    schedule.start()
    _until(lambda: "schedule" in started, timeout_s=0.5)
    # And once let go, all ran, the nudges in order, one at a time
    let_go.set()
    schedule.join(10)
    _until(lambda: len(started) == 4 and running[0] == 0)
    assert [n for n in started if n != "schedule"] == ["0", "1", "2"] and len(started) == 4 and most[0] == 1
    # And once its queue has been idle a while, no thread is left draining it; a later nudge still runs
    _until(lambda: not _draining("obsflow-test-submitter"))
    assert not _draining("obsflow-test-submitter")
    awslambda.invoke(FunctionName="obsflow-test-submitter", InvocationType="Event", Payload=json.dumps({"nudge": "3"}))
    _until(lambda: "3" in started)
    assert started[-1] == "3"


def _draining(function_name: str) -> bool:
    return any(thread.name == f"events-{function_name}" for thread in threading.enumerate())


def _until(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_server_finds_each_host_s_backend_as_moto_does_and_keeps_a_bounded_number_of_hosts(aws):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from obsflow.local.moto_patches import server

    # Given moto's server dispatcher, patched
    dispatcher = DomainDispatcherApplication(create_backend_app)
    # When it is asked for the backend of each host the stack's clients name, and of hosts no one serves
    hosts = ["dynamodb.us-east-1.amazonaws.com", "s3.amazonaws.com", "sqs.us-east-1.amazonaws.com",
             "lambda.us-east-1.amazonaws.com", "states.us-east-1.amazonaws.com", "batch.us-east-1.amazonaws.com"]
    # Then each answer is moto's own
    for host in hosts:
        assert dispatcher.get_backend_for_host(host) == server.moto_backend_for_host(dispatcher, host)
    assert dispatcher.get_backend_for_host("dynamodb.us-east-1.amazonaws.com") == "dynamodb"
    # And a thousand hosts named by clients keep no more than its bound
    for index in range(1000):
        dispatcher.get_backend_for_host(f"host-{index}.example")
    assert server.backend_of.cache_info().currsize <= server.KNOWN_HOSTS


def test_the_patches_refuse_a_moto_release_they_were_not_written_for():
    # When another moto release is installed, applying the patches says what to do
    with pytest.raises(moto_patches.UnsupportedMoto, match=r"pip install moto==5\.2\.5"):
        moto_patches.check_version("5.3.0")
    # And the pinned one passes
    moto_patches.check_version(moto_patches.PINNED_MOTO)
    assert sys.modules["moto"].__version__ == moto_patches.PINNED_MOTO



def test_jobs_are_described_while_an_array_job_adds_its_children(aws):
    # Given moto's Batch backend holding jobs, and a request adding an array job's children one by one
    from moto.batch.models import batch_backends

    backend = batch_backends["123456789012"][REGION]
    assert type(backend._jobs).__name__ == "_JobRegistry"  # the patched registry, not moto's plain dict
    job = SimpleNamespace(arn="arn:aws:batch:job/0", describe=dict, status="SUCCEEDED")
    for index in range(2000):
        backend._jobs[f"job-{index}"] = job
    errors = []

    def add_children():
        for index in range(20_000):
            backend._jobs[f"child-{index}"] = job

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often, as under load
    try:
        adding = threading.Thread(target=add_children)
        adding.start()
        # When another request describes jobs meanwhile (as Step Functions polls a submitJob.sync job)
        while adding.is_alive():
            try:
                backend.describe_jobs(["job-1"])
            except RuntimeError as exc:  # "dictionary changed size during iteration"
                errors.append(exc)
        adding.join()
    finally:
        sys.setswitchinterval(interval)
    # Then every description succeeds
    assert errors == []


def test_a_cancelled_run_has_its_execution_stopped_and_its_running_job_terminated(aws, batch):
    from obsflow.runs.domain import Run
    from obsflow.runs.platform import StepFunctionsExecutions
    from obsflow.settings import Settings

    # Given a run's execution waiting in a state, and its job running in its queue (a minute's sleep)
    settings = Settings(stage="stop", AWS_DEFAULT_REGION=REGION, account_id="123456789012")
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name="m", roleArn=ROLE, definition=json.dumps(
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}))["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="run-x")["executionArn"]
    environment = batch.describe_compute_environments()["computeEnvironments"][0]["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName=settings.job_queue_name("default"), state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])
    job = batch.submit_job(jobName="run-x-inventory", jobQueue=settings.job_queue_name("default"),
                           jobDefinition="python", containerOverrides={"command": run_code("import time; time.sleep(60)")})
    run = Run("run-x", "ri-x", "c1", "p", "frame-census", "1.0.0", 0, ["default"], {}, dt.datetime.now(dt.timezone.utc),
              execution_arn=execution)
    deadline = time.monotonic() + 20  # the execution has entered its state (a loaded machine starts it late)
    while not any(e["type"] == "WaitStateEntered" for e in sfn.get_execution_history(executionArn=execution)["events"]):
        assert time.monotonic() < deadline, "the execution never entered its Wait state"
        time.sleep(0.1)
    started = time.monotonic()
    # When it is cancelled
    terminated = StepFunctionsExecutions(settings).stop(run, "cancelled by ana: wrong set")
    # Then its execution is stopped (moto's execution thread records it a moment later; AWS at once), and its job
    # terminated at once, not after its minute
    while sfn.describe_execution(executionArn=execution)["status"] != "ABORTED":
        assert time.monotonic() - started < 20, "the execution was not stopped"
        time.sleep(0.1)
    assert terminated == ["run-x-inventory"]
    assert finished(batch, job["jobId"])["status"] == "FAILED" and time.monotonic() - started < 20


def test_a_job_terminated_before_its_turn_came_fails_without_running(batch, monkeypatch, tmp_path):
    from obsflow.local.moto_patches import batch as local_batch

    # Given a job whose turn to start has not come (a loaded machine)
    turn, run_job = threading.Event(), local_batch._run_job
    monkeypatch.setattr(local_batch, "_run_job", lambda job: (turn.wait(20), run_job(job)))
    ran = tmp_path / "ran"
    job = batch.submit_job(jobName="late", jobQueue="queue", jobDefinition="python",
                           containerOverrides={"command": run_code(f"open({str(ran)!r}, 'w').close()")})["jobId"]
    # When it is terminated, and then its turn comes
    batch.terminate_job(jobId=job, reason="cancelled by ana: wrong set")
    turn.set()
    # Then it fails, for the reason it was terminated, and its command never ran
    ended = finished(batch, job)
    assert (ended["status"], ended["statusReason"]) == ("FAILED", "cancelled by ana: wrong set")
    assert not ran.exists()


def test_a_job_terminated_while_its_process_started_is_stopped(batch, monkeypatch):
    from obsflow.local.moto_patches import batch as local_batch

    # Given TerminateJob arriving after the job's process has started but before the job could name it
    submitted, job = threading.Event(), {}

    def popen_then_terminated(*args, **kwargs):
        process = subprocess.Popen(*args, **kwargs)
        submitted.wait(20)
        batch.terminate_job(jobId=job["id"], reason="cancelled by ana: wrong set")
        return process

    monkeypatch.setattr(local_batch, "subprocess", SimpleNamespace(
        Popen=popen_then_terminated, PIPE=subprocess.PIPE, STDOUT=subprocess.STDOUT))
    # When a job of a minute's sleep is submitted
    started = time.monotonic()
    job["id"] = batch.submit_job(jobName="sleeper", jobQueue="queue", jobDefinition="python",
                                 containerOverrides={"command": run_code("import time; time.sleep(60)")})["jobId"]
    submitted.set()
    # Then it is stopped, not after its minute
    ended = finished(batch, job["id"])
    assert (ended["status"], ended["statusReason"]) == ("FAILED", "cancelled by ana: wrong set")
    assert time.monotonic() - started < 20


def test_a_task_process_whose_job_was_terminated_while_it_started_is_killed():
    from obsflow.local import task_processes

    # Given a task command whose job is terminated as its process starts (one that would exit 3 on its own: its
    # AWS is unreachable)
    environment = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION, "OBSFLOW_STAGE": "stop"}
    command = [sys.executable, "-m", "obsflow_tasks", "frame-census", "frames", "--run-id", "run-x"]
    # When it runs
    code, _ = task_processes.run_task_command(command, environment, "job-x", terminated=lambda: True)
    # Then it was killed (SIGKILL: 128 + 9), not left to end by itself
    assert code == 137
