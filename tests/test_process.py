"""The service as real processes (`manage.py serve` in each mode), talked to over HTTP."""

import signal
import subprocess
import sys

import pytest
import requests
from rest_framework_api_key.models import APIKey

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
    process = ServiceProcess([sys.executable, "manage.py", "serve"], {**env, "MAILER_MODE": mode, "BIND_ADDRESS": f"127.0.0.1:{port}"}, log_path)
    base = f"http://127.0.0.1:{port}"
    if mode != "processor":
        process.wait_for_http(f"{base}/healthz")
    return process, base


def test_mode_all_accepts_and_delivers_then_stops_cleanly_on_sigterm(simulator, tmp_path):
    # Queues of its own, so only this process's worker can have delivered the message.
    env = service_env(SQS_QUEUE_NAME="process-all", SQS_DLQ_NAME="process-all-dlq")
    provision(env)
    _, key = APIKey.objects.create_key(name="process test")
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


def test_mode_consumer_answers_503_and_keeps_nothing_when_sqs_is_down(tmp_path):
    # An SQS server of its own, to stop mid-test.
    sqs_url = start_moto(tmp_path)
    env = service_env(SQS_ENDPOINT_URL=sqs_url)
    provision(env)
    _, key = APIKey.objects.create_key(name="process test")
    process, base = serve("consumer", env, tmp_path / "serve.log")
    headers = {"Authorization": f"Bearer {key}"}
    try:
        assert requests.post(f"{base}/api/v1/messages", json=BODY, headers=headers, timeout=10).status_code == 202
        assert Message.objects.count() == 1

        port = int(sqs_url.rsplit(":", 1)[1])
        subprocess.run(["pkill", "-f", f"moto.server -H 127.0.0.1 -p {port}"], check=True)
        wait_until(lambda: requests.get(f"{base}/readyz", timeout=10).status_code == 503, what="/readyz to say unavailable")

        response = requests.post(f"{base}/api/v1/messages", json=BODY, headers=headers, timeout=30)
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "queue_unavailable"
        assert Message.objects.count() == 1  # the refused message left nothing behind
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        readiness = requests.get(f"{base}/readyz", timeout=10).json()
        assert readiness["checks"]["database"] == "ok" and readiness["checks"]["queue"].startswith("error")
    finally:
        assert process.stop() == 0


def test_mode_consumer_answers_503_when_sqs_hangs_instead_of_hanging_too(tmp_path):
    # SQS that accepts connections and never answers: without bounded client timeouts the
    # request would wait for minutes and its gunicorn thread with it.
    sqs_url = start_moto(tmp_path)
    proxy = HangingProxy("127.0.0.1", int(sqs_url.rsplit(":", 1)[1]))
    env = service_env(SQS_ENDPOINT_URL=proxy.url)
    provision(env)
    _, key = APIKey.objects.create_key(name="process test")
    process, base = serve("consumer", env, tmp_path / "serve.log")
    headers = {"Authorization": f"Bearer {key}"}
    try:
        assert requests.post(f"{base}/api/v1/messages", json=BODY, headers=headers, timeout=10).status_code == 202
        proxy.hang()
        response = requests.post(f"{base}/api/v1/messages", json=BODY, headers=headers, timeout=60)
        assert response.status_code == 503
        assert Message.objects.count() == 1
        assert requests.get(f"{base}/readyz", timeout=30).status_code == 503
    finally:
        proxy.close()
        assert process.stop() == 0


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
