"""Helpers for tests that run the service's real processes and talk to the real local servers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests
from django.db import connection
from django.utils import timezone

from mail.models import Message
from mail.supervisor import wait_for_http

SIMULATOR_URL = os.environ.get("MAILER_TEST_SIMULATOR_URL", "")


def wait_until(condition, timeout: float = 30.0, interval: float = 0.1, what: str = "the condition"):
    """Poll condition() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def drain(sqs, queue_url: str) -> int:
    """Delete every message visible in the queue now; return how many there were."""
    drained = 0
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        sqs.delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
        drained += len(messages)
    return drained


def database_url_for_processes() -> str:
    """The URL of the database this test run uses, for processes the tests start."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    credentials = settings["USER"] or ""
    if settings["PASSWORD"]:
        credentials += f":{settings['PASSWORD']}"
    host = settings["HOST"] or "127.0.0.1"
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{settings['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url_for_processes(), "PYTHONUNBUFFERED": "1", **overrides}


class ServiceProcess:
    """A real process of ours (manage.py serve, a celery worker, ...) with its output in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60.0) -> None:
        def seen():
            if self.process.poll() is not None:
                raise AssertionError(f"process exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            return text in self.output()

        wait_until(seen, timeout, what=f"{text!r} in {self.log_path.name}")

    def wait_for_http(self, url: str, timeout: float = 60.0) -> None:
        wait_for_http(url, timeout, self.process)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Simulator:
    """The test side of the provider simulator's control API."""

    def __init__(self, url: str = SIMULATOR_URL):
        self.url = url

    def reset(self) -> None:
        requests.delete(f"{self.url}/_simulator/requests", timeout=5).raise_for_status()
        for provider in ("sendgrid", "mailgun", "ses"):
            requests.delete(f"{self.url}/_simulator/behaviour/{provider}", timeout=5).raise_for_status()
        for provider in ("sendgrid", "mailgun"):
            requests.delete(f"{self.url}/_simulator/webhooks/{provider}", timeout=5).raise_for_status()
        self.log_lag(0)

    def send_webhooks(self, provider: str, url: str, **signing) -> None:
        """After each acceptance, post the provider's signed `processed` event to url."""
        requests.put(f"{self.url}/_simulator/webhooks/{provider}", json={"url": url, **signing}, timeout=5).raise_for_status()

    def log_lag(self, milliseconds: int) -> None:
        """How long after an acceptance the providers' log APIs show it."""
        requests.put(f"{self.url}/_simulator/logs", json={"lag_ms": milliseconds}, timeout=5).raise_for_status()

    def behave(self, provider: str, **behaviour) -> None:
        requests.put(f"{self.url}/_simulator/behaviour/{provider}", json=behaviour, timeout=5).raise_for_status()

    def requests(self, provider: str | None = None, accepted: bool | None = None) -> list[dict]:
        params = {}
        if provider:
            params["provider"] = provider
        if accepted is not None:
            params["accepted"] = "true" if accepted else "false"
        response = requests.get(f"{self.url}/_simulator/requests", params=params, timeout=5)
        response.raise_for_status()
        return response.json()


def sent_message(api_key, provider: str = "sendgrid", recipients: str = "ann@example.com"):
    """A message row as a provider's acceptance leaves it: sent, by that provider, just now."""
    return Message.objects.create(
        api_key=api_key,
        team=api_key.profile.team,
        status=Message.Status.SENT,
        from_email="shop@example.com",
        recipients=recipients,
        recipient_addresses=[address.strip().lower() for address in recipients.split(",")],
        recipient_count=len(recipients.split(",")),
        subject="Receipt",
        provider=provider,
        sent_at=timezone.now(),
    )
