"""docker-compose.yml brought up with podman-compose, a message sent through it end to end, and
the stack brought down with nothing of it left.

Two things of this machine kind are worked around here, and only here:
- No image registry is reachable: the compose file's PostgreSQL, Redis and moto images are
  stand-ins built under the very names it uses (podman/ensure-image.sh), and MongoDB has none
  (no server can be had here). The stack runs without it: the archive of rejected requests is
  best-effort, and nothing else depends on it.
- podman 4.3 ignores `depends_on: condition: service_healthy`, so the stack is started in the
  order the conditions declare, stage by stage (`up --no-deps`), each stage's health checks
  waited for here (tests/test_deploy.py holds the file's conditions to this order)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import requests
import yaml

from tests.embedded_services import free_port
from tests.stack import mail_body
from tests.support import wait_until

from .conftest import IMAGE, MEASUREMENTS
from .podman import compose_project_name, podman, remove_compose_project

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
WITHOUT = {"mongo"}
STAGES = [["postgres", "redis", "aws", "simulator"], ["setup"], ["consumer", "processor"]]


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def test_the_stages_follow_the_compose_files_conditions():
    services = compose_services()
    assert {name for stage in STAGES for name in stage} | WITHOUT == set(services)
    for index, stage in enumerate(STAGES):
        earlier = {name for done in STAGES[:index] for name in done} | WITHOUT
        for name in stage:
            assert set(services[name].get("depends_on", {})) <= earlier, (name, services[name].get("depends_on"))


class Compose:
    def __init__(self):
        self.project = compose_project_name()
        self.api_port, self.simulator_port = free_port(), free_port()
        # A shell of its own: the compose file takes provider URLs and keys from the environment,
        # and this test run's point at its own simulator on loopback.
        self.env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "CONTAINERS_CONF") if name in os.environ}
        self.env.update(MAILER_PORT=str(self.api_port), SIMULATOR_PORT=str(self.simulator_port))
        self.command = [
            os.environ.get("PODMAN_COMPOSE", "podman-compose"),
            "--project-name",
            self.project,
            "--file",
            str(COMPOSE_FILE),
        ]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, (
            f"podman-compose {' '.join(args)}: {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def left(self) -> dict[str, list[str]]:
        label = f"label=io.podman.compose.project={self.project}"
        return {
            "containers": podman("ps", "--all", "--format", "{{.Names}}", "--filter", label).stdout.split(),
            "pods": [p for p in podman("pod", "ls", "--format", "{{.Name}}").stdout.split() if self.project in p],
            "networks": [n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if self.project in n],
        }

    def force_remove(self) -> None:
        remove_compose_project(self.project)


def volumes() -> set[str]:
    return set(podman("volume", "ls", "--quiet").stdout.split())


def wait_healthy(container: str, timeout: float = 120) -> None:
    def healthy() -> bool:
        state = podman("container", "inspect", "--format", "{{.State.Status}}", container).stdout.strip()
        assert state == "running", f"{container} is {state}:\n{podman('logs', container, check=False).stderr[-3000:]}"
        return podman("healthcheck", "run", container, check=False).returncode == 0

    wait_until(healthy, timeout=timeout, interval=0.5, what=f"{container} to be healthy")


def test_the_compose_stack_serves_a_message_and_comes_down_with_nothing_left(image):
    services = compose_services()
    ensure = [str(ROOT / "podman" / "ensure-image.sh")]
    ensure += sorted({s["image"] for name, s in services.items() if name not in WITHOUT and s["image"] != "mailer:local"})
    started = time.monotonic()
    subprocess.run(ensure, check=True, timeout=1200)
    MEASUREMENTS["compose_stand_in_images_seconds"] = round(time.monotonic() - started, 1)
    if IMAGE != "mailer:local":
        podman("tag", IMAGE, "mailer:local")  # the name the compose file gives the image it builds
    compose = Compose()
    volumes_before = volumes()
    try:
        started = time.monotonic()
        for stage in STAGES:
            compose("up", "--detach", "--no-build", "--no-deps", *stage)
            for service in stage:
                if service == "setup":  # one-off: migrations, queues and bucket
                    code = podman("wait", compose.container("setup"), timeout=300).stdout.strip()
                    assert code == "0", podman("logs", compose.container("setup"), check=False).stderr[-3000:]
                else:
                    wait_healthy(compose.container(service))
        MEASUREMENTS["compose_up_to_healthy_seconds"] = round(time.monotonic() - started, 1)

        # The README's way to an API key, without a TTY so that stdout is the key alone.
        key = compose("run", "--rm", "--no-deps", "-T", "consumer", "manage", "create_api_key", "local").stdout.strip()
        api = f"http://127.0.0.1:{compose.api_port}"
        headers = {"Authorization": f"Bearer {key}"}
        response = requests.post(
            f"{api}/api/v1/messages", json=mail_body("through the compose stack"), headers=headers, timeout=30
        )
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]
        simulator = f"http://127.0.0.1:{compose.simulator_port}/_simulator/requests"

        def delivered() -> bool:
            received = requests.get(simulator, params={"accepted": "true"}, timeout=5).json()
            return any(message_id in str(request) for request in received)

        try:
            wait_until(delivered, timeout=60, what="the compose stack's processor to send it to the simulator")
        except AssertionError as failed:
            logs = {
                service: podman("logs", compose.container(service), check=False).stderr[-2000:]
                for service in ("consumer", "processor", "simulator")
            }
            raise AssertionError(f"{failed}; logs: {logs}") from None
        wait_until(
            lambda: requests.get(f"{api}/api/v1/messages/{message_id}", headers=headers, timeout=10).json()["status"] == "sent",
            timeout=30,
            what="status sent",
        )

        started = time.monotonic()
        compose("down", "--volumes", timeout=400)
        MEASUREMENTS["compose_down_seconds"] = round(time.monotonic() - started, 1)
        assert compose.left() == {"containers": [], "pods": [], "networks": []}
        # Named volumes (PostgreSQL's data) and anonymous ones (the image's VOLUME /tmp) alike.
        assert volumes() - volumes_before == set()
    finally:
        compose.force_remove()
        for volume in volumes() - volumes_before:
            podman("volume", "rm", "--force", volume, check=False)
