"""The image tests: the built image, black-box, in containers (docs/image.md).

They run only when MAILER_IMAGE names an image (`make image-test` builds it and sets it); under a
plain `make test` they are skipped. With MAILER_IMAGE set nothing may be skipped: a skipped test
fails the run, so a missing tool or image can never pass for a green one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg
import pytest

from tests.support import Simulator

from . import ecs
from .podman import LABEL, Container, image_config, podman, remove_leftovers

HERE = Path(__file__).resolve().parent
IMAGE = os.environ.get("MAILER_IMAGE", "")
# Measurements (start-up times, memory, the image's size) for docs/image.md, written at the end.
MEASUREMENTS: dict[str, object] = {}
MEASUREMENTS_FILE = HERE.parent.parent / "var" / "image-test" / "measurements.json"
_skipped: list[str] = []


def _mine(path) -> bool:
    return Path(str(path)).resolve().is_relative_to(HERE)


def pytest_collection_modifyitems(config, items):
    if IMAGE:
        return
    skip = pytest.mark.skip(reason="image tests: `make image-test` builds the image and runs them (MAILER_IMAGE)")
    for item in items:
        if _mine(item.path):
            item.add_marker(skip)


def pytest_runtest_logreport(report):
    if IMAGE and report.skipped and _mine(report.fspath):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if IMAGE and MEASUREMENTS:
        MEASUREMENTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        MEASUREMENTS_FILE.write_text(json.dumps(MEASUREMENTS, indent=2, sort_keys=True) + "\n")
    if IMAGE and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if IMAGE and _skipped:
        terminalreporter.write_line(f"FAILED: {len(_skipped)} image test(s) skipped with MAILER_IMAGE set: {_skipped}", red=True)
    if IMAGE and MEASUREMENTS:
        terminalreporter.write_line(f"image measurements ({MEASUREMENTS_FILE}): {json.dumps(MEASUREMENTS, sort_keys=True)}")


@pytest.fixture(scope="session")
def image() -> dict:
    """The image's configuration (podman image inspect); no container of an earlier run left."""
    assert shutil.which("podman"), "podman is needed (apt-get install podman runc)"
    done = podman("image", "exists", IMAGE, check=False)
    assert done.returncode == 0, f"no image {IMAGE}: `make image` builds it"
    remove_leftovers()
    config = image_config(IMAGE)
    MEASUREMENTS["image"] = IMAGE
    MEASUREMENTS["image_size_mb"] = round(config["Size"] / 1e6)
    MEASUREMENTS["base_stand_in"] = (config.get("Labels") or {}).get("mailer.stand-in", "")
    yield config
    remove_leftovers()


@pytest.fixture(scope="session")
def image_database_url() -> str:
    """A database of the image tests' own beside DATABASE_URL's (`<name>_image`), new per run and
    dropped after it; the image's own `migrate` makes its tables."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    parts = urlsplit(base)
    name = f"{parts.path.lstrip('/')}_image"
    url = urlunsplit(parts._replace(path=f"/{name}"))

    def admin(statement: str) -> None:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(statement)

    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"')
    yield url
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Deployment:
    """The image's containers as the CloudFormation task definitions run them (tests/image/ecs.py),
    against this machine's PostgreSQL and Redis, moto's SQS, S3 and CloudWatch Logs (started by
    tests/embedded_services.py on loopback) and the provider simulator."""

    def __init__(self, image_config: dict, database_url: str):
        self.image_config = image_config
        self.moto_url = os.environ["SQS_ENDPOINT_URL"]
        self.simulator = Simulator()
        self.secrets = ecs.secret_values(database_url)
        self.bucket = "mailer-image-test"
        self.log_group = ecs.REFERENCES["AppLogGroup"]
        self.containers: list[Container] = []

    def aws(self, service: str):
        return boto3.client(
            service, region_name="us-east-1", endpoint_url=self.moto_url, aws_access_key_id="t", aws_secret_access_key="t"
        )

    def env(self, task: str, queue: str, **overrides: str) -> dict[str, str]:
        references = {
            **ecs.REFERENCES,
            "MailQueue.QueueName": queue,
            "DeadLetterQueue.QueueName": f"{queue}-dlq",
            # The callbacks' pair, as the template names them beside the mail queue.
            "CallbackQueue.QueueName": f"{queue}-callbacks",
            "CallbackDeadLetterQueue.QueueName": f"{queue}-callbacks-dlq",
            "LargeMessageBucket": self.bucket,
            "RedisUrl": "redis://127.0.0.1:6379/12",
        }
        env = ecs.task_environment(ecs.task_container(task), references, self.secrets)
        # Not AWS: what a task gets from its role and AWS's endpoints, and the simulated providers.
        env.update(
            SQS_ENDPOINT_URL=self.moto_url,
            S3_ENDPOINT_URL=self.moto_url,
            AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=self.moto_url,
            AWS_ACCESS_KEY_ID="image-test",
            AWS_SECRET_ACCESS_KEY="image-test",
            SENDGRID_API_URL=self.simulator.url,
            MAILGUN_API_URL=self.simulator.url,
        )
        if task == "migrate":
            # The migrate task definition names no queue: the settings' defaults, never used by it.
            env.pop("SQS_QUEUE_NAME", None)
        env.update(overrides)
        return env

    def options(self, task: str, queue: str, **overrides: str) -> list[str]:
        return ecs.run_options(ecs.task_container(task), self.image_config, self.env(task, queue, **overrides))

    def run_once(self, task: str, queue: str, *command: str, **overrides: str) -> subprocess.CompletedProcess:
        """A one-off task (`--rm`), as `aws ecs run-task` with a command override would run it."""
        return podman(
            "run", "--rm", "--label", LABEL, *self.options(task, queue, **overrides), IMAGE, *command, check=False, timeout=300
        )

    def new_queue(self) -> str:
        """Queues of their own, provisioned by the image's `provision` (CloudFormation makes them on AWS)."""
        queue = f"it-{uuid.uuid4().hex[:10]}"
        done = self.run_once("processor", queue, "provision")
        assert done.returncode == 0, done.stdout + done.stderr
        return queue

    def start(self, task: str, queue: str, name: str, **overrides: str) -> Container:
        container = Container(IMAGE, name, self.options(task, queue, **overrides), ["serve"])
        self.containers.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.containers:
            container.remove()


@pytest.fixture(scope="session")
def deployment(image, image_database_url) -> Deployment:
    deployment = Deployment(image, image_database_url)
    deployment.aws("logs").create_log_group(logGroupName=deployment.log_group)
    started = time.monotonic()
    migrated = deployment.run_once("migrate", "unused", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Applying mail.0001_initial... OK" in migrated.stdout
    MEASUREMENTS["migrate_task_seconds"] = round(time.monotonic() - started, 1)
    yield deployment
    deployment.remove_all()
