"""The podman side of the image tests: run podman, start containers labelled as the tests', read
their health, processes and memory, and remove whatever the tests left, even after a crash."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

# Every container the tests start carries it, with the test run's process id as its value: a run
# removes what it started, and what runs no longer alive left (never another live run's).
LABEL_KEY = "mailer-image-test"
LABEL = f"{LABEL_KEY}={os.getpid()}"


class PodmanError(AssertionError):
    pass


def podman(*args: str, check: bool = True, timeout: float = 180, stdin: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and done.returncode != 0:
        raise PodmanError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def image_config(image: str) -> dict:
    return json.loads(podman("image", "inspect", image).stdout)[0]


def remove_leftovers() -> None:
    """Containers (and their anonymous volumes) of this run or of runs that are gone (one killed
    half-way included)."""
    listed = podman(
        "ps", "--all", "--filter", f"label={LABEL_KEY}", "--format", f'{{{{.ID}}}} {{{{index .Labels "{LABEL_KEY}"}}}}'
    )
    names = []
    for line in listed.stdout.splitlines():
        container, _, run = line.partition(" ")
        if run == str(os.getpid()) or not (run.isdigit() and Path(f"/proc/{run}").exists()):
            names.append(container)
    if names:
        podman("rm", "--force", "--volumes", "--time", "0", *names, check=False)
    # Compose projects of runs that are gone (tests/image/test_compose.py names them mailer-it-<pid>-...).
    projects = set(podman("ps", "--all", "--format", '{{index .Labels "io.podman.compose.project"}}').stdout.split())
    projects |= {n.split("_", 1)[0] for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split()}
    projects |= {n.split("_", 1)[0] for n in podman("volume", "ls", "--format", "{{.Name}}").stdout.split()}
    for project in projects:
        if (found := re.fullmatch(r"mailer-it-(\d+)-[0-9a-f]+", project)) and not Path(f"/proc/{found[1]}").exists():
            remove_compose_project(project)


def compose_project_name() -> str:
    return f"mailer-it-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def remove_compose_project(project: str) -> None:
    """Whatever of a compose project is left, should `down` not have run or not have finished."""
    containers = podman("ps", "--all", "--quiet", "--filter", f"label=io.podman.compose.project={project}").stdout.split()
    if containers:
        podman("rm", "--force", "--volumes", "--time", "0", *containers, check=False)
    for pod in podman("pod", "ls", "--format", "{{.Name}}").stdout.split():
        if pod == f"pod_{project}":
            podman("pod", "rm", "--force", pod, check=False)
    for network in podman("network", "ls", "--format", "{{.Name}}").stdout.split():
        if network.startswith(f"{project}_"):
            podman("network", "rm", "--force", network, check=False)
    for volume in podman("volume", "ls", "--format", "{{.Name}}").stdout.split():
        if volume.startswith(f"{project}_"):
            podman("volume", "rm", "--force", volume, check=False)


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below pid, from the host's /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((child, cmdline))
        todo.extend(children.get(child, []))
    return found


class Container:
    """A container started detached from the image under test, labelled for clean-up."""

    def __init__(self, image: str, name: str, run_args: list[str], command: list[str]):
        self.name = f"mailer-it-{name}-{uuid.uuid4().hex[:6]}"
        self.started_at = time.monotonic()
        podman("run", "--detach", "--name", self.name, "--label", LABEL, *run_args, image, *command)

    def inspect(self) -> dict:
        return json.loads(podman("container", "inspect", self.name).stdout)[0]

    def running(self) -> bool:
        return self.inspect()["State"]["Running"]

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def healthcheck(self) -> bool:
        """Run the image's HEALTHCHECK once now, as the runtime would every interval (podman has
        no timer without systemd); podman records the result in the container's health state."""
        return podman("healthcheck", "run", self.name, check=False, timeout=60).returncode == 0

    def health_status(self) -> str:
        return self.inspect()["State"]["Health"]["Status"]

    def wait_healthy(self, timeout: float) -> float:
        """Seconds from the start of the container to its first passing health check."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise AssertionError(f"{self.name} exited:\n{self.logs()[-4000:]}")
            if self.healthcheck():
                return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not healthy after {timeout:.0f} s:\n{self.logs()[-4000:]}")
            time.sleep(0.2)

    def wait_unhealthy(self, timeout: float) -> float:
        """Health checks run until the runtime declares the container unhealthy (its retries
        failed in a row, past the start period); seconds that took."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            self.healthcheck()
            if self.health_status() == "unhealthy":
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still {self.health_status()} after {timeout:.0f} s")
            time.sleep(1)

    def processes(self) -> list[tuple[int, str]]:
        return descendants(self.inspect()["State"]["Pid"])

    def signal_processes(self, sig: int, matching: str) -> list[int]:
        pids = [pid for pid, cmdline in self.processes() if matching in cmdline]
        assert pids, f"no process matching {matching!r} in {self.name}: {self.processes()}"
        for pid in pids:
            os.kill(pid, sig)
        return pids

    def memory_bytes(self) -> int:
        """The container's memory use as the runtime counts it (its cgroup: every process in it)."""
        stats = json.loads(podman("stats", "--no-stream", "--no-reset", "--format", "json", self.name).stdout)
        return _bytes(stats[0]["mem_usage"].split("/")[0])

    def pss_bytes(self) -> int:
        """The proportional set size of the container's processes, summed (shared pages divided
        among those sharing them): their own memory, without the page cache the cgroup counts."""
        total = 0
        for pid, _ in self.processes():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue  # gone meanwhile
        return total

    def stop(self, timeout: int) -> tuple[int, float]:
        """`podman stop` (SIGTERM, SIGKILL after timeout s): the exit code and the seconds it took."""
        started = time.monotonic()
        podman("stop", "--time", str(timeout), self.name, timeout=timeout + 60)
        took = time.monotonic() - started
        return self.inspect()["State"]["ExitCode"], took

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", "--time", "0", self.name, check=False)


def _bytes(text: str) -> int:
    text = text.strip()
    units = {"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "B": 1}
    for unit, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(float(text))
