"""The image run as deploy/cloudformation.yml's task definitions declare, on podman: the
container definitions are read from the template and turned into `podman run` options, so what
the tests prove holds for what the template says (and a change to it changes the tests' runs).

What ECS Fargate does and podman is told to do the same:
- ReadonlyRootFilesystem: `--read-only` without podman's extra tmpfs mounts (/run, /var/tmp):
  only the task's volumes are writable.
- A task volume with no host (`Volumes: [{Name: tmp}]`) is a Fargate bind mount. ECS copies the
  image's contents there, with their owner and mode, only when the image declares a VOLUME at
  that path; otherwise it is an empty directory owned by root with mode 0755 (AWS, "Use bind
  mounts with Amazon ECS"). Both are reproduced: an anonymous volume (podman copies the image's
  directory into it), or an empty root-owned 0755 directory from the host.
- InitProcessEnabled: `--init`; StopTimeout: `--stop-timeout`; the user is the image's own.
- Environment and Secrets: the template's names, with test values for its references and secrets,
  the AWS endpoints pointed at moto's server (the stand-in for AWS) and the providers at the
  simulator. Networking: the host's (like awsvpc, the task's own address; here loopback, where
  PostgreSQL, Redis, moto and the simulator listen)."""

from __future__ import annotations

import os
import secrets
import tempfile

from tests.test_deploy import containers

# The template's references (!Ref, !GetAtt) as the tests resolve them; None: taken per run.
REFERENCES = {
    "PublicHostname": "mailer.example.test",
    "AWS::Region": "us-east-1",
    "MailProviders": "sendgrid,mailgun",
    "MailgunDomain": "mg.example.test",
    "AppLogGroup": "/mailer-image-test/app",
    "MailQueue.QueueName": None,
    "DeadLetterQueue.QueueName": None,
    "CallbackQueue.QueueName": None,
    "CallbackDeadLetterQueue.QueueName": None,
    "LargeMessageBucket": None,
    "RedisUrl": None,
}
# The template's conditions as the tests deploy it: no SES identity given, so no SES resources.
CONDITIONS = {"SesEnabled": False}


def task_container(name: str) -> dict:
    return containers()[name]


def resolve(value, references: dict[str, str]) -> str:
    if isinstance(value, str):
        return value
    ((function, argument),) = value.items()
    if function == "Fn::If":
        condition, when_true, when_false = argument
        assert condition in CONDITIONS, f"the tests do not know the condition {condition}: add it to CONDITIONS"
        return resolve(when_true if CONDITIONS[condition] else when_false, references)
    key = ".".join(argument) if function == "Fn::GetAtt" else argument
    assert function in ("Ref", "Fn::GetAtt") and key in references, f"the tests do not know {value}: add it to REFERENCES"
    return references[key]


def task_environment(container: dict, references: dict[str, str], secret_values: dict[str, str]) -> dict[str, str]:
    env = {item["Name"]: resolve(item["Value"], references) for item in container.get("Environment", [])}
    for item in container.get("Secrets", []):
        assert item["Name"] in secret_values, f"the tests have no value for the secret {item['Name']}"
        env[item["Name"]] = secret_values[item["Name"]]
    return env


def run_options(container: dict, image_config: dict, env: dict[str, str]) -> list[str]:
    options = ["--network=host"]
    if container.get("ReadonlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]
    declared = image_config["Config"].get("Volumes") or {}
    for mount in container.get("MountPoints", []):
        path = mount["ContainerPath"]
        if path in declared:
            options += ["--volume", path]  # anonymous: seeded from the image, removed with the container
        else:
            empty = tempfile.mkdtemp(prefix="mailer-ecs-bind-mount-")
            os.chmod(empty, 0o755)
            options += ["--volume", f"{empty}:{path}"]
    if container.get("LinuxParameters", {}).get("InitProcessEnabled"):
        options.append("--init")
    if "StopTimeout" in container:
        options.append(f"--stop-timeout={container['StopTimeout']}")
    for name, value in env.items():
        options += ["--env", f"{name}={value}"]
    return options


def secret_values(database_url: str) -> dict[str, str]:
    """Values for every secret of the template's AppSecretArn."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "SENDGRID_API_KEY": "image-test-sendgrid-key",
        "MAILGUN_API_KEY": "image-test-mailgun-key",
        "METRICS_TOKEN": secrets.token_urlsafe(16),
        # No MongoDB server can be had here; empty turns the archive off, as the template allows.
        "MONGODB_URI": "",
        # Empty: the webhooks refuse every event (their tests run on the source tree).
        "SENDGRID_WEBHOOK_PUBLIC_KEY": "",
        "MAILGUN_WEBHOOK_SIGNING_KEY": "",
    }
