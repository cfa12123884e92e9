"""The service as real processes (`manage.py serve` in each mode), talked to over HTTP."""

import os
import re
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests

from mail import keys, queues
from mail.management.commands.serve import processor_argv
from mail.models import Message

from .embedded_services import free_port, start_moto
from .faults import HangingProxy
from .support import ServiceProcess, service_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BODY = {"from": "a@example.com", "to": "b@example.com", "subject": "from a real process", "text": "hello"}


def provision(env):
    subprocess.run([sys.executable, "manage.py", "provision_queues"], env=env, check=True, capture_output=True)


def serve(mode: str, env: dict, log_path) -> tuple[ServiceProcess, str]:
    port = free_port()
    process = ServiceProcess(
        [sys.executable, "manage.py", "serve"], {**env, "MAILER_MODE": mode, "BIND_ADDRESS": f"127.0.0.1:{port}"}, log_path
    )
    base = f"http://127.0.0.1:{port}"
    if mode != "processor":
        process.wait_for_http(f"{base}/healthz")
    return process, base


def test_mode_all_accepts_and_delivers_then_stops_cleanly_on_sigterm(simulator, tmp_path):
    # Queues of its own, so only this process's worker can have delivered the message.
    env = service_env(SQS_QUEUE_NAME="process-all", SQS_DLQ_NAME="process-all-dlq")
    provision(env)
    _, key = keys.create("process test")
    process, base = serve("all", env, tmp_path / "serve.log")
    headers = {"Authorization": f"Bearer {key}"}
    try:
        response = requests.post(f"{base}/api/v1/messages", json=BODY, headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        location = base + response.headers["Location"]
        wait_until(lambda: requests.get(location, headers=headers, timeout=5).json()["status"] == "sent", what="delivery")
        assert [r["json"]["subject"] for r in simulator.requests("sendgrid", accepted=True)] == [BODY["subject"]]
        assert requests.get(f"{base}/readyz", timeout=5).json() == {"status": "ok", "checks": {"database": "ok", "queue": "ok"}}
    finally:
        exit_code = process.stop(signal.SIGTERM, timeout=60)
    output = process.output()
    assert exit_code == 0, output[-3000:]
    assert "started processor" in output and "started consumer" in output
    assert "Shutting down: Master" in output  # gunicorn's graceful stop
    assert "Unrecoverable error" not in output and "Traceback" not in output


@pytest.fixture
def consumer_with_own_sqs(tmp_path):
    """A consumer process whose SQS server (behind a proxy that can hang) is the test's to break."""
    sqs_url, sqs_process = start_moto(tmp_path)
    proxy = HangingProxy("127.0.0.1", int(sqs_url.rsplit(":", 1)[1]))
    env = service_env(SQS_ENDPOINT_URL=proxy.url)
    provision(env)
    _, key = keys.create("process test")
    process, base = serve("consumer", env, tmp_path / "serve.log")
    yield SimpleNamespace(
        base=base, headers={"Authorization": f"Bearer {key}"}, proxy=proxy, sqs_process=sqs_process, sqs_url=sqs_url
    )
    proxy.close()
    sqs_process.terminate()
    assert process.stop() == 0


@pytest.mark.parametrize("outage", ["killed", "hung"])
def test_mode_consumer_answers_503_and_keeps_nothing_when_sqs_fails(consumer_with_own_sqs, outage):
    api = consumer_with_own_sqs
    assert requests.post(f"{api.base}/api/v1/messages", json=BODY, headers=api.headers, timeout=10).status_code == 202
    assert Message.objects.count() == 1

    if outage == "killed":
        api.sqs_process.kill()
        api.sqs_process.wait()
    else:
        # Accepts connections, never answers: without bounded client timeouts the request would
        # wait for minutes and its gunicorn thread with it.
        api.proxy.hang()
    wait_until(lambda: requests.get(f"{api.base}/readyz", timeout=10).status_code == 503, what="/readyz to say unavailable")

    response = requests.post(f"{api.base}/api/v1/messages", json=BODY, headers=api.headers, timeout=60)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "queue_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert Message.objects.count() == 1  # the refused message left nothing behind
    assert requests.get(f"{api.base}/healthz", timeout=5).status_code == 200
    readiness = requests.get(f"{api.base}/readyz", timeout=10).json()
    assert readiness["checks"]["database"] == "ok" and readiness["checks"]["queue"].startswith("error")


def test_a_chunked_body_gets_411_not_a_misleading_400(consumer_with_own_sqs):
    api = consumer_with_own_sqs
    chunks = iter([b'{"from": "a@example.com", ', b'"to": "b@example.com", "subject": "s", "text": "t"}'])
    response = requests.post(
        f"{api.base}/api/v1/messages", data=chunks, headers={**api.headers, "Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 411
    assert response.json()["error"]["type"] == "length_required"


def test_a_publish_whose_answer_is_lost_after_a_worker_took_the_task_is_202_and_sent_once(tmp_path, simulator):
    # The API talks to SQS through a proxy that will pass requests on but lose the answers; the
    # worker talks to SQS directly. SQS stores the task, a worker sends it, the API never hears
    # that SQS took it: the message must stand as accepted, not be withdrawn with a 503.
    sqs_url, sqs_process = start_moto(tmp_path)
    proxy = HangingProxy("127.0.0.1", int(sqs_url.rsplit(":", 1)[1]))
    worker_env = service_env(SQS_ENDPOINT_URL=sqs_url, SQS_QUEUE_NAME="lost-answer", SQS_DLQ_NAME="lost-answer-dlq")
    provision(worker_env)
    worker, _ = serve("processor", worker_env, tmp_path / "worker.log")
    # One API process, so the first request has already looked up the queue's URL and the lost
    # answer is that of the publish itself.
    api, base = serve("consumer", {**worker_env, "SQS_ENDPOINT_URL": proxy.url, "WEB_WORKERS": "1"}, tmp_path / "api.log")
    _, key = keys.create("process test")
    try:
        worker.wait_for_output("ready.")
        headers = {"Authorization": f"Bearer {key}"}
        assert requests.post(f"{base}/api/v1/messages", json=BODY, headers=headers, timeout=10).status_code == 202
        proxy.mute()
        response = requests.post(f"{base}/api/v1/messages", json={**BODY, "subject": "lost answer"}, headers=headers, timeout=60)
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]
        wait_until(lambda: Message.objects.get(pk=message_id).status == "sent", what="the message to be sent")
        # botocore retried the publish, so SQS holds a second copy: it must not send again.
        wait_until(lambda: "already sent or canceled; not sending" in worker.output(), what="the copy to be acked")
        subjects = [r["json"]["subject"] for r in simulator.requests("sendgrid", accepted=True)]
        assert subjects.count("lost answer") == 1
        assert "a worker already has the message" in api.output()
    finally:
        proxy.close()
        api.stop()
        worker.stop()
        sqs_process.terminate()


def test_a_worker_without_its_queue_refuses_to_start_and_creates_nothing(tmp_path):
    env = service_env(SQS_QUEUE_NAME="never-provisioned", SQS_DLQ_NAME="never-provisioned-dlq")
    worker = ServiceProcess(processor_argv(), env, tmp_path / "worker.log")
    assert worker.process.wait(timeout=60) != 0
    assert "run `python manage.py provision_queues` first" in worker.output()
    assert "never-provisioned" not in str(queues.sqs_client().list_queues().get("QueueUrls", []))


def test_mode_processor_runs_only_the_worker(tmp_path):
    env = service_env(SQS_QUEUE_NAME="process-worker", SQS_DLQ_NAME="process-worker-dlq")
    provision(env)
    process, _ = serve("processor", env, tmp_path / "serve.log")
    try:
        process.wait_for_output("ready.")
    finally:
        assert process.stop() == 0
    assert "started processor" in process.output()
    assert "started consumer" not in process.output()


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_children_of_a_supervisor_killed_with_sigkill_stop_with_it(tmp_path):
    env = service_env(SQS_QUEUE_NAME="process-orphans", SQS_DLQ_NAME="process-orphans-dlq")
    provision(env)
    process, _ = serve("processor", env, tmp_path / "serve.log")
    process.wait_for_output("ready.")
    children = [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", process.output())]
    try:
        # The mail worker, and the callbacks' worker (with the drainer and housekeeping inside).
        assert len(children) == 2 and all(map(running, children))
        os.kill(process.process.pid, signal.SIGKILL)  # the supervisor alone: it can pass nothing on
        process.process.wait()
        wait_until(lambda: not any(map(running, children)), timeout=30, what="the supervisor's children to stop with it")
    finally:
        # Whatever failed, nothing of it may outlive the test (a live child holds the test database).
        process.stop()
        for pid in children:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_prefork_processor_forks_for_the_mail_alone(tmp_path):
    # The callbacks' worker runs threads: prefork would fork CALLBACK_WORKER_CONCURRENCY processes
    # (16, about 110 MB each) for requests that mostly wait.
    env = service_env(
        SQS_QUEUE_NAME="process-prefork", SQS_DLQ_NAME="process-prefork-dlq", WORKER_POOL="prefork", WORKER_CONCURRENCY="2"
    )
    provision(env)
    process, _ = serve("processor", env, tmp_path / "serve.log")
    try:
        process.wait_for_output("ready.")
        mail_worker, callbacks_worker = (int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", process.output()))
        wait_until(lambda: len(children_of(mail_worker)) == 2, timeout=30, what="the mail worker's two pool processes")
        assert children_of(callbacks_worker) == []
    finally:
        assert process.stop() == 0


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]
