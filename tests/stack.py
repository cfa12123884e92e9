"""A whole delivery stack for one test: queues of its own on the embedded SQS server, the API and
any number of Celery workers as real processes, configured through the environment as in
production, with timings short enough for tests."""

from __future__ import annotations

import base64
import collections
import itertools
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import requests

from mail import keys
from mail.management.commands.serve import processor_argv

from .embedded_services import free_port
from .support import ServiceProcess, service_env, wait_until

# Lease > connect + read, visibility > lease (settings.py checks both); retry waits of 1 s, 1-2 s, 2-4 s.
FAST = {
    "SQS_VISIBILITY_TIMEOUT": "8",
    "SQS_MAX_RECEIVE_COUNT": "3",
    "PROVIDER_CONNECT_TIMEOUT": "1",
    "PROVIDER_READ_TIMEOUT": "3",
    "DELIVERY_LEASE_SECONDS": "5",
    "DELIVERY_RETRY_BASE_SECONDS": "1",
    "WORKER_CONCURRENCY": "4",
    # An ambiguous attempt (a worker killed mid-send) waits for the providers this long, asking every 2 s.
    "AMBIGUOUS_GRACE_SECONDS": "10",
    "AMBIGUOUS_RECHECK_SECONDS": "2",
}


class Stack:
    def __init__(self, directory: Path, **env: str):
        self.directory = directory
        queue = f"t-{uuid.uuid4().hex[:10]}"
        self.env = service_env(**{**FAST, **env, "SQS_QUEUE_NAME": queue, "SQS_DLQ_NAME": f"{queue}-dlq"})
        subprocess.run([sys.executable, "manage.py", "provision_queues"], env=self.env, check=True, capture_output=True)
        self.sqs = boto3.client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=self.env["SQS_ENDPOINT_URL"],
            aws_access_key_id="t",
            aws_secret_access_key="t",
        )
        self.queue_url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        self.dlq_url = self.sqs.get_queue_url(QueueName=f"{queue}-dlq")["QueueUrl"]
        self.processes: list[ServiceProcess] = []
        self.api_url = ""
        _, key = keys.create("stack")
        self.headers = {"Authorization": f"Bearer {key}"}
        self._names = itertools.count(1)

    # --- processes ------------------------------------------------------------------------
    def start_api(self, **env: str) -> None:
        """An API process (another one, if one runs already: api_url then points at the new one)."""
        port = free_port()
        process = self._start(
            [sys.executable, "manage.py", "serve"],
            "api",
            **{**env, "MAILER_MODE": "consumer", "BIND_ADDRESS": f"127.0.0.1:{port}"},
        )
        self.api_url = f"http://127.0.0.1:{port}"
        process.wait_for_http(f"{self.api_url}/healthz")

    def start_worker(self, **env: str) -> ServiceProcess:
        """The production worker command line, as its own process group (so a test can kill it)."""
        process = self._start(processor_argv(pool=env.get("WORKER_POOL")), "worker", **env)
        process.wait_for_output("ready.")
        return process

    def start_command(
        self, argv: list[str], kind: str, wait_for: str | None = "ready.", env: dict | None = None
    ) -> ServiceProcess:
        """Any command line, in the stack's environment (or in `env` instead, when given)."""
        log = self.directory / f"{kind}-{next(self._names)}.log"
        process = ServiceProcess(argv, self.env if env is None else env, log)
        self.processes.append(process)
        if wait_for:
            process.wait_for_output(wait_for)
        return process

    def _start(self, argv: list[str], kind: str, **env: str) -> ServiceProcess:
        return self.start_command(argv, kind, wait_for=None, env={**self.env, **env})

    def stop(self) -> None:
        """Stop every process as production does (SIGTERM: a worker finishes what it runs, the
        logs are flushed), last started first."""
        for process in reversed(self.processes):
            process.stop(signal.SIGTERM, timeout=30)

    def kill(self) -> None:
        """Stop every process at once (SIGKILL): after a test, nothing of the stack is wanted and a
        graceful stop costs seconds per worker (its long poll). The queues are the stack's own."""
        for process in self.processes:
            process.stop(signal.SIGKILL)

    # --- the API --------------------------------------------------------------------------
    def post(self, body: dict) -> str:
        response = requests.post(f"{self.api_url}/api/v1/messages", json=body, headers=self.headers, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def message(self, message_id: str) -> dict:
        response = requests.get(f"{self.api_url}/api/v1/messages/{message_id}", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_status(self, message_id: str, status: str, timeout: float = 60) -> dict:
        return wait_until(
            lambda: (data := self.message(message_id))["status"] == status and data,
            timeout=timeout,
            what=f"message {message_id} to be {status} (logs in {self.directory})",
        )

    def publish_copy(self, message_id: str, body: dict) -> None:
        """Queue another copy of a message's delivery task, through the service's own code (what
        SQS's at-least-once delivery can do at any time)."""
        self._run_with_django(
            "s = MessageCreateSerializer(data=json.loads(sys.argv[2])); s.is_valid(raise_exception=True);"
            "fields = dict(s.validated_data); fields.pop('send_at'); fields.pop('ignore_suppressions'); fields.pop('template');"
            "DeliveryTask(sys.argv[1], OutboundMessage(sys.argv[1], **fields).to_payload()).publish()",
            message_id,
            json.dumps(body),
        )

    def publish_copy_raw(self, message_id: str, payload: dict) -> None:
        """Queue a delivery task with this payload as it is, readable or not."""
        self._run_with_django("DeliveryTask(sys.argv[1], json.loads(sys.argv[2])).publish()", message_id, json.dumps(payload))

    def _run_with_django(self, code: str, *args: str) -> None:
        setup = (
            "import json, sys, django; django.setup();"
            "from mail.delivery_task import DeliveryTask; from mail.api.serializers import MessageCreateSerializer;"
            "from providers.base import OutboundMessage;"
        )
        env = {**self.env, "DJANGO_SETTINGS_MODULE": "mailer_project.settings"}
        subprocess.run([sys.executable, "-c", setup + code, *args], env=env, check=True, capture_output=True)

    def admin_session(self, username: str, password: str) -> requests.Session:
        """Logged into the admin of this stack's API process, as a browser would be."""
        session = requests.Session()
        session.get(f"{self.api_url}/admin/login/", timeout=10)
        response = session.post(
            f"{self.api_url}/admin/login/?next=/admin/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": f"{self.api_url}/admin/login/"},
            timeout=10,
        )
        assert response.url.endswith("/admin/"), "admin login failed"
        return session

    def admin_form(self, session: requests.Session, path: str, fields: dict) -> None:
        """Submit an admin add or change form (path like "mail/providersetting/add")."""
        url = f"{self.api_url}/admin/{path}/"
        response = session.post(
            url, data={**fields, "csrfmiddlewaretoken": session.cookies["csrftoken"]}, headers={"Referer": url}, timeout=30
        )
        assert response.status_code == 200 and "errornote" not in response.text, response.text[:2000]

    def admin_action(self, session: requests.Session, changelist: str, action: str, ids: list) -> str:
        response = session.post(
            f"{self.api_url}/admin/{changelist}/",
            data={
                "action": action,
                "_selected_action": [str(i) for i in ids],
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.api_url}/admin/{changelist}/"},
            timeout=30,
        )
        assert response.status_code == 200, response.text[:500]
        return response.text

    # --- the queues -----------------------------------------------------------------------
    def counts(self, url: str | None = None) -> dict[str, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url or self.queue_url, AttributeNames=names)["Attributes"]
        return {name.removeprefix("ApproximateNumberOf"): int(attributes[name]) for name in names}

    def queue_is_empty(self) -> bool:
        return not any(self.counts().values())

    def drain_dead_letters(self) -> str:
        """Run the DLQ drainer once, as the operator's command line."""
        done = subprocess.run(
            [sys.executable, "manage.py", "drain_dlq", "--once"], env=self.env, check=True, capture_output=True, text=True
        )
        return done.stdout

    def start_drainer(self, **env: str) -> ServiceProcess:
        return self._start([sys.executable, "manage.py", "drain_dlq"], "drainer", **env)

    def dead_letter_task_ids(self) -> list[str]:
        """The message ids of the delivery tasks in the DLQ (read without taking them)."""
        found = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1)
        return [task_arguments(m["Body"])[0] for m in found.get("Messages", [])]


def task_arguments(sqs_body: str) -> list:
    """A Celery task's positional arguments, from the SQS message body kombu wrote."""
    envelope = json.loads(base64.b64decode(sqs_body))
    return json.loads(base64.b64decode(envelope["body"]))[0]


def queued_message_ids(sqs, queue_url) -> list[str]:
    """The message ids of the delivery tasks in the queue, taking them out."""
    ids = []
    while found := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        ids += [task_arguments(m["Body"])[0] for m in found]
        sqs.delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(found)]
        )
    return ids


def mail_body(subject: str = "hello", **changes) -> dict:
    return {"from": "shop@example.com", "to": "ann@example.com", "subject": subject, "text": "hi", **changes}


def accepted_per_message(simulator) -> collections.Counter:
    """How many times each of our messages was accepted by any provider, by the id we sent."""
    counts = collections.Counter()
    for request in simulator.requests(accepted=True):
        if request["provider"] == "sendgrid":
            counts[request["json"]["personalizations"][0]["custom_args"]["mailer_message_id"]] += 1
        else:
            counts[request["form"]["v:mailer_message_id"][0]] += 1
    return counts
