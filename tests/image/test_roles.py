"""Each role of the image in a container of its own, as its task definition runs it: the consumer
(API), the processor (worker and DLQ drainer) and `all` (both, one container). The tests of this
module follow one deployment's life and run in file order on the same three containers: start
and turn healthy, serve mail end to end, turn unhealthy when a process is stuck (and healthy again
when it goes on), then stop on SIGTERM, a send in flight finished first."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import pytest
import requests

from tests.embedded_services import free_port
from tests.stack import accepted_per_message, mail_body
from tests.support import wait_until

from . import ecs
from .conftest import MEASUREMENTS
from .podman import Container

API_HOST = ecs.REFERENCES["PublicHostname"]
# What the load balancer adds: TLS ends there, so the task sees plain HTTP (HTTPS=true in the task).
FROM_THE_LOAD_BALANCER = {"Host": API_HOST, "X-Forwarded-Proto": "https"}
# The start period the task definitions give (30 s) plus time for a loaded 2-core machine.
START_TIMEOUT = 90


class Api:
    def __init__(self, port: int, key: str):
        self.url = f"http://127.0.0.1:{port}"
        self.headers = {**FROM_THE_LOAD_BALANCER, "Authorization": f"Bearer {key}"}

    def post(self, body: dict) -> str:
        response = requests.post(f"{self.url}/api/v1/messages", json=body, headers=self.headers, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def status(self, message_id: str) -> str:
        response = requests.get(f"{self.url}/api/v1/messages/{message_id}", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["status"]


class Roles:
    def __init__(self, deployment, queue: str, all_queue: str, key: str, api_port: int, all_port: int):
        self.deployment = deployment
        self.queue, self.all_queue = queue, all_queue
        self.consumer_api, self.all_api = Api(api_port, key), Api(all_port, key)
        self.containers: dict[str, Container] = {}


@pytest.fixture(scope="module")
def roles(deployment, simulator_reset):
    queue, all_queue = deployment.new_queue(), deployment.new_queue()
    created = deployment.run_once("consumer", queue, "manage", "create_api_key", "image-test")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    api_port, all_port = free_port(), free_port()
    roles = Roles(deployment, queue, all_queue, key, api_port, all_port)
    # One at a time, so that each start-up is measured without the others' on the two cores.
    for role, task, role_queue, overrides in (
        ("consumer", "consumer", queue, {"BIND_ADDRESS": f"127.0.0.1:{api_port}"}),
        ("processor", "processor", queue, {}),
        ("all", "consumer", all_queue, {"MAILER_MODE": "all", "BIND_ADDRESS": f"127.0.0.1:{all_port}"}),
    ):
        container = deployment.start(task, role_queue, role, **overrides)
        roles.containers[role] = container
        MEASUREMENTS[f"{role}_start_to_healthy_seconds"] = round(container.wait_healthy(START_TIMEOUT), 1)
        MEASUREMENTS[f"{role}_memory_idle_mb"] = round(container.memory_bytes() / 1e6)
        MEASUREMENTS[f"{role}_pss_idle_mb"] = round(container.pss_bytes() / 1e6)
    yield roles
    for container in roles.containers.values():
        container.remove()


@pytest.fixture(scope="module")
def simulator_reset(deployment):
    deployment.simulator.reset()
    return deployment.simulator


def no_tracebacks(logs: str) -> bool:
    lines = [line for line in logs.splitlines() if "Traceback" in line]
    assert not lines, "\n".join(lines)[-6000:]
    return True


def delivered_once(simulator, message_id: str) -> bool:
    return accepted_per_message(simulator).get(message_id) == 1


def test_each_role_turns_healthy_within_the_start_period(roles):
    for role in ("consumer", "processor", "all"):
        assert MEASUREMENTS[f"{role}_start_to_healthy_seconds"] < 30, MEASUREMENTS
        container = roles.containers[role]
        assert container.health_status() == "healthy"
        processes = " | ".join(cmdline for _, cmdline in container.processes())
        assert ("gunicorn" in processes) == (role != "processor"), processes
        # The mail worker and the callbacks' worker, which runs the drainer and housekeeping inside.
        assert processes.count("celery") == (0 if role == "consumer" else 2), processes
        assert ("background jobs started: drain_dlq, housekeeping" in container.logs()) == (role != "consumer")
        # Every process of the container runs as the image's user, none as root but the init.
        users = {line.split()[1] for line in _status_uids(container)}
        assert users == {"10001"}, users


def _status_uids(container: Container) -> list[str]:
    lines = []
    for pid, _cmdline in container.processes():
        try:
            uid_line = next(line for line in open(f"/proc/{pid}/status") if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        lines.append(uid_line)
    return lines


def test_the_load_balancers_health_check_finds_the_consumer_ready(roles):
    # As the target group asks: plain HTTP to the task's address, no X-Forwarded-Proto; under
    # HTTPS=true and ALLOWED_HOSTS of the public name, /readyz still answers (not a redirect, not 400).
    for api in (roles.consumer_api, roles.all_api):
        response = requests.get(f"{api.url}/readyz", headers={"Host": "10.0.1.23:8000"}, timeout=10, allow_redirects=False)
        assert response.status_code == 200, response.text
    # Anything else over plain HTTP is sent to HTTPS, as production wants.
    response = requests.get(
        f"{roles.consumer_api.url}/api/v1/messages", headers={"Host": API_HOST}, timeout=10, allow_redirects=False
    )
    assert response.status_code == 301 and response.headers["Location"].startswith("https://")


def test_a_message_posted_to_the_consumer_is_delivered_by_the_processor(roles, simulator_reset):
    message_id = roles.consumer_api.post(mail_body("through the consumer and the processor"))
    wait_until(lambda: delivered_once(simulator_reset, message_id), timeout=60, what="the processor's send")
    wait_until(lambda: roles.consumer_api.status(message_id) == "sent", timeout=30, what="status sent")
    # Only the consumer answers HTTP; the worker that sent it is the processor's.
    assert "message_id" in roles.containers["processor"].logs() and message_id in roles.containers["processor"].logs()
    for role in ("consumer", "processor"):
        MEASUREMENTS[f"{role}_memory_after_a_message_mb"] = round(roles.containers[role].memory_bytes() / 1e6)
        MEASUREMENTS[f"{role}_pss_after_a_message_mb"] = round(roles.containers[role].pss_bytes() / 1e6)


def test_the_all_role_delivers_what_its_own_api_accepts(roles, simulator_reset):
    message_id = roles.all_api.post(mail_body("all in one container"))
    wait_until(lambda: delivered_once(simulator_reset, message_id), timeout=60, what="the all container's send")
    wait_until(lambda: roles.all_api.status(message_id) == "sent", timeout=30, what="status sent")
    assert message_id in roles.containers["all"].logs()
    assert message_id not in roles.containers["processor"].logs()
    MEASUREMENTS["all_memory_after_a_message_mb"] = round(roles.containers["all"].memory_bytes() / 1e6)
    MEASUREMENTS["all_pss_after_a_message_mb"] = round(roles.containers["all"].pss_bytes() / 1e6)


def cloudwatch_lines(deployment) -> list[dict]:
    logs = deployment.aws("logs")
    events, token = [], None
    while True:
        page = logs.filter_log_events(logGroupName=deployment.log_group, **({"nextToken": token} if token else {}))
        events += page["events"]
        if not (token := page.get("nextToken")):
            return [json.loads(event["message"]) for event in events]


def logged(deployment, message_id: str, outcome: str) -> bool:
    return any(line.get("message_id") == message_id and line.get("outcome") == outcome for line in cloudwatch_lines(deployment))


def test_logs_reach_the_log_group_from_every_role(roles, deployment):
    # The deployment's CLOUDWATCH_LOG_GROUP (moto's CloudWatch Logs here): watchtower ships batches
    # from each process, gunicorn's workers and the gevent worker alike.
    message_id = roles.consumer_api.post(mail_body("logged"))
    wait_until(
        lambda: logged(deployment, message_id, "accepted") and logged(deployment, message_id, "sent"),
        timeout=60,
        what="its log lines in CloudWatch",
    )


def test_a_stuck_process_turns_its_role_unhealthy_and_healthy_again_when_it_goes_on(roles):
    # The consumer's API wedged (every gunicorn process stopped); the processor's worker wedged
    # (its event loop no longer touches the heartbeat); `all` with only its worker wedged.
    stuck = {"consumer": "gunicorn", "processor": "celery", "all": "celery"}
    stopped = {role: roles.containers[role].signal_processes(signal.SIGSTOP, matching) for role, matching in stuck.items()}
    started = time.monotonic()
    try:
        # The heartbeat may be 60 s old before the check fails, and three failures in a row count.
        for role in stuck:
            roles.containers[role].wait_unhealthy(timeout=150)
            MEASUREMENTS[f"{role}_stuck_to_unhealthy_seconds"] = round(time.monotonic() - started, 1)
    finally:
        for pids in stopped.values():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
    for role in stuck:
        roles.containers[role].wait_healthy(timeout=60)
        assert roles.containers[role].health_status() == "healthy"


def test_sigterm_lets_the_processor_finish_its_send_in_flight(roles, simulator_reset):
    simulator_reset.behave("sendgrid", latency_ms=4000)
    try:
        message_id = roles.consumer_api.post(mail_body("in flight at shutdown"))
        wait_until(lambda: simulator_reset.requests("sendgrid"), timeout=60, what="the provider to receive the send")
        stop_timeout = ecs.task_container("processor")["StopTimeout"]
        exit_code, took = roles.containers["processor"].stop(timeout=stop_timeout)
    finally:
        simulator_reset.behave("sendgrid", latency_ms=0)
    MEASUREMENTS["processor_stop_with_a_send_in_flight_seconds"] = round(took, 1)
    logs = roles.containers["processor"].logs()
    assert exit_code == 0, logs[-4000:]
    assert took < stop_timeout
    assert delivered_once(simulator_reset, message_id)
    assert roles.consumer_api.status(message_id) == "sent"
    # Acked before the worker left: nothing waits in the queue to be sent again.
    attributes = roles.deployment.aws("sqs").get_queue_attributes(
        QueueUrl=roles.deployment.aws("sqs").get_queue_url(QueueName=roles.queue)["QueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert no_tracebacks(logs)
    # Its last log lines were shipped before it left: the send finished while stopping included.
    assert logged(roles.deployment, message_id, "sent")


@pytest.mark.parametrize("role", ["consumer", "all"])
def test_sigterm_stops_the_role_cleanly(roles, role):
    exit_code, took = roles.containers[role].stop(timeout=ecs.task_container("consumer")["StopTimeout"])
    logs = roles.containers[role].logs()
    assert exit_code == 0, logs[-4000:]
    assert no_tracebacks(logs)
    MEASUREMENTS[f"{role}_stop_seconds"] = round(took, 1)
