"""The built image itself: what it declares, what is in its file system, and Django's deployment
checks run inside it as the CloudFormation task definitions run it (non-root, read-only root
file system, /tmp the one writable place)."""

from __future__ import annotations

import json

import pytest

from . import ecs
from .conftest import IMAGE, MEASUREMENTS
from .podman import LABEL, podman

SECONDS = 1_000_000_000  # podman reports durations in nanoseconds

# Run inside the image as its own user: what the tests below assert about its file system.
FILE_SYSTEM_REPORT = r"""
import grp, json, os, shutil, stat, sys
found = {"python": sys.version.split()[0], "uid": os.getuid(), "gid": os.getgid()}
tmp = os.stat("/tmp")
found["tmp_mode"] = oct(stat.S_IMODE(tmp.st_mode)); found["tmp_owner"] = tmp.st_uid
found["tmp_entries"] = sorted(os.listdir("/tmp"))
found["group_10001"] = grp.getgrgid(10001).gr_name if 10001 in [g.gr_gid for g in grp.getgrall()] else None
found["installers_and_compilers"] = sorted(n for n in ("pip", "pip3", "gcc", "cc", "c++", "make") if shutil.which(n))
try:
    import pip  # noqa: F401
    found["pip_importable"] = True
except ImportError:
    found["pip_importable"] = False
writable = []
for top in ("/app", "/opt/venv"):
    for directory, dirnames, filenames in os.walk(top):
        for entry in [directory, *(os.path.join(directory, n) for n in filenames)]:
            info = os.lstat(entry)
            if not stat.S_ISLNK(info.st_mode) and (info.st_uid == os.getuid() or info.st_mode & 0o022):
                writable.append(entry)
found["app_writable_by_its_user"] = writable[:20]
found["static_files"] = sum(len(f) for _, _, f in os.walk("/app/static"))
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def file_system(image) -> dict:
    done = podman(
        "run",
        "--rm",
        "--label",
        LABEL,
        "--read-only",
        "--network=none",
        "--entrypoint",
        "python",
        IMAGE,
        "-c",
        FILE_SYSTEM_REPORT,
    )
    found = json.loads(done.stdout)
    MEASUREMENTS["python_in_image"] = found["python"]
    return found


def test_the_image_declares_the_user_health_check_and_volume_the_task_definitions_rely_on(image):
    config = image["Config"]
    # Numeric, so ECS can tell it is not root without reading /etc/passwd.
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/app/docker/entrypoint.sh"] and config["Cmd"] == ["serve"]
    assert config["StopSignal"] == "SIGTERM"
    # The image's HEALTHCHECK is the task definitions' (docker's format keeps it; OCI's drops it).
    health = image.get("Healthcheck")
    assert health, "no HEALTHCHECK in the image: was it built with --format docker?"
    for task in ("consumer", "processor"):
        declared = ecs.task_container(task)["HealthCheck"]
        assert health["Test"] == declared["Command"]
        assert health["Interval"] == declared["Interval"] * SECONDS
        assert health["Timeout"] == declared["Timeout"] * SECONDS
        assert health["Retries"] == declared["Retries"]
        assert health["StartPeriod"] == declared["StartPeriod"] * SECONDS
    # ECS copies an image's directory into a task's bind mount only where the image declares a
    # VOLUME; without one the task's /tmp would be an empty root-owned 0755 directory.
    for task in ("consumer", "processor", "migrate"):
        for mount in ecs.task_container(task)["MountPoints"]:
            assert mount["ContainerPath"] in (config.get("Volumes") or {}), mount


def test_tmp_is_empty_and_writable_by_everyone_so_a_volume_seeded_from_it_is_too(file_system):
    # The defect the first build showed: settings loaded as root by collectstatic left a root-owned
    # /tmp/mailer (MAILER_VAR_DIR), and a /tmp seeded from the image refused the worker its heartbeat.
    assert file_system["tmp_entries"] == []
    assert file_system["tmp_mode"] == "0o1777" and file_system["tmp_owner"] == 0


def test_the_user_is_mailer_in_a_group_of_its_own_and_cannot_change_the_app(file_system):
    assert (file_system["uid"], file_system["gid"]) == (10001, 10001)
    assert file_system["group_10001"] == "mailer"
    assert file_system["app_writable_by_its_user"] == []
    assert file_system["static_files"] > 100  # the admin's, collected at build time


def test_no_package_installer_or_compiler_at_run_time(file_system):
    assert file_system["installers_and_compilers"] == []
    assert file_system["pip_importable"] is False


@pytest.mark.parametrize("task", ["consumer", "processor"])
def test_deployment_checks_pass_inside_the_image_as_the_task_runs_it(deployment, task):
    done = deployment.run_once(task, "unused", "manage", "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_one_off_commands_run_as_tasks(deployment):
    queue = deployment.new_queue()  # `provision`, under the read-only root file system
    urls = deployment.aws("sqs").list_queues(QueueNamePrefix=queue)["QueueUrls"]
    # The mail queue and the callbacks' queue, each with its dead-letter queue.
    assert sorted(url.rsplit("/", 1)[1] for url in urls) == sorted(
        [queue, f"{queue}-dlq", f"{queue}-callbacks", f"{queue}-callbacks-dlq"]
    )
    migrated = deployment.run_once("migrate", "unused", "migrate")
    assert migrated.returncode == 0 and "No migrations to apply" in migrated.stdout, migrated.stdout + migrated.stderr
    drained = deployment.run_once("processor", queue, "manage", "drain_dlq", "--once")
    assert drained.returncode == 0 and "0 dead letter(s) recorded" in drained.stdout, drained.stdout + drained.stderr
    unknown = deployment.run_once("processor", queue, "frobnicate")
    assert unknown.returncode == 64 and "usage:" in unknown.stderr
