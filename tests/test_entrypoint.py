"""The image's entrypoint (docker/entrypoint.sh) run directly, as the container runs it: each
MAILER_MODE starts the right processes, the health check tells alive from not, SIGTERM to the
entrypoint's process (what Docker and ECS send) stops everything cleanly, and a worker stopped in
the middle of a send finishes it first."""

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from mail.models import Message

from .embedded_services import free_port
from .stack import FAST, mail_body
from .support import ServiceProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = str(ROOT / "docker" / "entrypoint.sh")


def image_like_env(env: dict, tmp_path, **overrides) -> dict:
    """The environment as the image sets it: `python` is the service's, a heartbeat file."""
    return {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "WORKER_HEARTBEAT_FILE": str(tmp_path / "worker-heartbeat"),
        **overrides,
    }


def run_entrypoint(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", ENTRYPOINT, *args], env=env, capture_output=True, text=True, timeout=120)


def children_of(pid: int) -> list[str]:
    """The command lines of pid's direct children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


@pytest.fixture
def entrypoint_env(make_stack, tmp_path):
    """Queues of its own (provisioned through the entrypoint) and the stack's API for posting mail."""
    stack = make_stack()
    env = image_like_env(stack.env, tmp_path)
    return stack, env


EXPECTED_CHILDREN = {
    "consumer": ["gunicorn"],
    # The mail worker and the callbacks' worker (which runs the drainer and housekeeping inside).
    "processor": ["celery", "celery"],
    "all": ["celery", "celery", "gunicorn"],
}


@pytest.mark.parametrize("mode", ["consumer", "processor", "all"])
def test_each_mode_starts_its_processes_is_healthy_and_stops_on_sigterm(entrypoint_env, tmp_path, mode):
    _, base_env = entrypoint_env
    port = free_port()
    env = {**base_env, "MAILER_MODE": mode, "BIND_ADDRESS": f"127.0.0.1:{port}"}
    assert run_entrypoint("healthcheck", env=env).returncode == 1  # nothing runs yet

    # No argument: the image's CMD is `serve`.
    process = ServiceProcess(["sh", ENTRYPOINT], env, tmp_path / f"{mode}.log")
    try:
        if mode != "processor":
            process.wait_for_http(f"http://127.0.0.1:{port}/healthz")
        if mode != "consumer":
            process.wait_for_output("ready.")
            process.wait_for_output("background jobs started: drain_dlq, housekeeping")
        wait_until(lambda: run_entrypoint("healthcheck", env=env).returncode == 0, what=f"the {mode} health check to pass")
        # `exec` all the way down: the entrypoint's own process is the supervisor.
        children = children_of(process.process.pid)
        found = sorted(
            kind for kind in ("gunicorn", "celery", "drain_dlq", "housekeeping") for child in children if kind in child
        )
        assert found == EXPECTED_CHILDREN[mode], children
    finally:
        # What `docker stop` does: SIGTERM to the container's main process only.
        if process.process.poll() is None:
            os.kill(process.process.pid, signal.SIGTERM)
        exit_code = process.process.wait(timeout=120)
    output = process.output()
    assert exit_code == 0, output[-3000:]
    assert "Traceback" not in output
    assert children_of(process.process.pid) == []
    check = run_entrypoint("healthcheck", env=env)
    assert check.returncode == 1
    if mode != "consumer":
        assert "no worker heartbeat" in check.stderr  # the worker removed it on its way out


def test_the_api_serves_under_gthread_when_asked_and_refuses_an_unknown_model(make_stack, tmp_path):
    # Two threads, six requests at once: the ones beyond the threads wait their turn, none is lost.
    stack = make_stack(WEB_SERVER_MODEL="gthread", WEB_WORKERS="1", WEB_THREADS="2")
    with ThreadPoolExecutor(6) as pool:
        accepted = list(pool.map(lambda n: stack.post(mail_body(f"threaded {n}")), range(6)))
    assert len(set(accepted)) == 6
    assert stack.counts()["Messages"] == 6
    api = stack.processes[-1]
    gunicorn = [child for child in children_of(api.process.pid) if "gunicorn" in child]
    assert len(gunicorn) == 1 and "JsonErrorsThreadWorker" in gunicorn[0] and "gevent" not in gunicorn[0], gunicorn

    refused = ServiceProcess(
        [sys.executable, "manage.py", "serve"], {**stack.env, "WEB_SERVER_MODEL": "eventlet"}, tmp_path / "refused.log"
    )
    assert refused.process.wait(timeout=60) != 0
    assert "WEB_SERVER_MODEL must be gevent or gthread, not 'eventlet'" in refused.output()
    refused.stop()


def test_sigterm_during_a_send_lets_the_worker_finish_it(entrypoint_env, simulator, tmp_path):
    stack, env = entrypoint_env
    # A send of 4 s, well inside the provider's read timeout; the claim's lease outlasts it.
    env = {
        **env,
        **FAST,
        "PROVIDER_READ_TIMEOUT": "8",
        "DELIVERY_LEASE_SECONDS": "12",
        "SQS_VISIBILITY_TIMEOUT": "30",
        "MAILER_MODE": "processor",
    }
    simulator.behave("sendgrid", latency_ms=4000)
    processor = ServiceProcess(["sh", ENTRYPOINT, "serve"], env, tmp_path / "processor.log")
    try:
        processor.wait_for_output("ready.")
        message_id = stack.post(mail_body("in flight at shutdown"))
        wait_until(lambda: simulator.requests("sendgrid"), what="the provider to receive the send")
        assert Message.objects.get(pk=message_id).status == "sending"
        os.kill(processor.process.pid, signal.SIGTERM)
        exit_code = processor.process.wait(timeout=60)
    finally:
        processor.stop()
    assert exit_code == 0, processor.output()[-3000:]
    message = Message.objects.get(pk=message_id)
    assert message.status == "sent" and message.provider == "sendgrid"
    assert len(simulator.requests("sendgrid", accepted=True)) == 1
    # Acked before the worker left: nothing waits to be sent again.
    assert stack.queue_is_empty()


def test_one_off_commands(entrypoint_env, tmp_path):
    _, env = entrypoint_env
    env = {**env, "SQS_QUEUE_NAME": "entrypoint-oneoff", "SQS_DLQ_NAME": "entrypoint-oneoff-dlq"}
    provisioned = run_entrypoint("provision", env=env)
    assert provisioned.returncode == 0, provisioned.stderr
    assert (
        requests.post(
            env["SQS_ENDPOINT_URL"], data={"Action": "GetQueueUrl", "QueueName": "entrypoint-oneoff-dlq"}, timeout=10
        ).status_code
        == 200
    )
    migrated = run_entrypoint("migrate", env=env)
    assert migrated.returncode == 0 and "No migrations to apply" in migrated.stdout, migrated.stdout + migrated.stderr
    drained = run_entrypoint("manage", "drain_dlq", "--once", env=env)
    assert drained.returncode == 0 and "0 dead letter(s) recorded" in drained.stdout
    unknown = run_entrypoint("frobnicate", env=env)
    assert unknown.returncode == 64 and "usage:" in unknown.stderr
