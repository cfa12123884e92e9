"""The deployment files agree with the code: every variable docker-compose.yml and the
CloudFormation template set is one mailer_project/settings.py reads, production sets what it must,
the queues CloudFormation creates are those provision_queues would make, and the orchestrators
wait longer for a stop than `serve` gives a send in flight. (Syntax and lint: `make check-deploy`.)"""

import re
from pathlib import Path

import yaml
from cfnlint.decode import cfn_yaml
from django.conf import settings

from mail import queues
from mail.management.commands.serve import shutdown_grace_seconds
from providers.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
# env("NAME"), env.int("NAME", ...), env.db("NAME"), environ.Env().str("NAME", ...)
SETTINGS_READ = re.compile(r"\b(?:env|Env\(\))(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"")

DESIGN_NAMES = {  # the configuration names the service was specified with (docs/operations.md), a contract
    "MAILER_MODE",
    "DATABASE_URL",
    "AWS_REGION",
    "SQS_ENDPOINT_URL",
    "SQS_QUEUE_NAME",
    "SQS_DLQ_NAME",
    "SQS_MAX_RECEIVE_COUNT",
    "SQS_VISIBILITY_TIMEOUT",
    "MAIL_PROVIDERS",
    "SENDGRID_API_KEY",
    "SENDGRID_API_URL",
    "MAILGUN_API_KEY",
    "MAILGUN_DOMAIN",
    "MAILGUN_API_URL",
    "MONGODB_URI",
    "S3_BUCKET",
    "S3_ENDPOINT_URL",
    "LARGE_MESSAGE_BYTES",
    "CLOUDWATCH_LOG_GROUP",
    "REDIS_URL",
}
# What production leaves to the settings' defaults: the providers' real URLs, the claim-check threshold.
PRODUCTION_DEFAULTS = {"SENDGRID_API_URL", "MAILGUN_API_URL", "LARGE_MESSAGE_BYTES"}
PRODUCTION_REQUIRED = (DESIGN_NAMES - PRODUCTION_DEFAULTS) | {"SECRET_KEY", "ALLOWED_HOSTS", "HTTPS", "METRICS_TOKEN"}


def settings_names() -> set[str]:
    """What settings.py reads: its own names, and those each provider declares in its folder."""
    own = set(SETTINGS_READ.findall((ROOT / "mailer_project" / "settings.py").read_text()))
    return own | {setting.name for setting in REGISTRY.settings()}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_mailer_services() -> dict[str, dict]:
    """The services running our image with its settings (not the simulator or the databases)."""
    return {name: s for name, s in compose()["services"].items() if s.get("image") == "mailer:local" and s.get("environment")}


def template() -> dict:
    return cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yml"))


def containers() -> dict[str, dict]:
    resources = template()["Resources"]
    return {
        c["Name"]: c
        for r in resources.values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
        for c in r["Properties"]["ContainerDefinitions"]
    }


def container_env(container: dict) -> dict:
    """Plain values, and secrets as the marker "<secret>"."""
    env = {item["Name"]: item["Value"] for item in container.get("Environment", [])}
    env.update({item["Name"]: "<secret>" for item in container.get("Secrets", [])})
    return env


def test_the_settings_parser_finds_the_names_settings_reads():
    names = settings_names()
    assert {"DATABASE_URL", "MAILER_VAR_DIR", "SQS_VISIBILITY_TIMEOUT", "WORKER_POOL", "METRICS_TOKEN"} <= names
    assert names >= DESIGN_NAMES


def test_compose_sets_only_names_settings_reads_and_every_design_name():
    read = settings_names()
    services = compose_mailer_services()
    assert set(services) == {"setup", "consumer", "processor"}
    for name, service in services.items():
        assert set(service["environment"]) <= read, f"{name}: {set(service['environment']) - read} are read by nothing"
        assert DESIGN_NAMES - {"MAILER_MODE"} <= set(service["environment"]), name
    assert services["consumer"]["environment"]["MAILER_MODE"] == "consumer"
    assert services["processor"]["environment"]["MAILER_MODE"] == "processor"


def test_cloudformation_sets_only_names_settings_reads_and_what_production_needs():
    read = settings_names()
    found = containers()
    assert set(found) == {"consumer", "processor", "migrate"}
    for name, container in found.items():
        env = container_env(container)
        assert set(env) <= read, f"{name}: {set(env) - read} are read by nothing"
        # Empty means real AWS: the default is the local SQS-compatible server.
        assert env["SQS_ENDPOINT_URL"] == ""
        assert env["SECRET_KEY"] == env["DATABASE_URL"] == "<secret>"
    for name in ("consumer", "processor"):
        env = container_env(found[name])
        assert PRODUCTION_REQUIRED <= set(env), f"{name} lacks {PRODUCTION_REQUIRED - set(env)}"
        assert env["MAILER_MODE"] == name
        assert env["HTTPS"] == "true"
        for secret in ("SENDGRID_API_KEY", "MAILGUN_API_KEY", "METRICS_TOKEN", "MONGODB_URI"):
            assert env[secret] == "<secret>", f"{secret} must come from Secrets Manager"


def test_cloudformation_queues_are_what_provision_queues_makes():
    resources = template()["Resources"]
    queue, dlq = resources["MailQueue"]["Properties"], resources["DeadLetterQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == settings.SQS_VISIBILITY_TIMEOUT
    assert queue["RedrivePolicy"]["maxReceiveCount"] == settings.SQS_MAX_RECEIVE_COUNT
    assert queue["MessageRetentionPeriod"] == queues.MAIN_QUEUE_RETENTION_SECONDS
    assert dlq["MessageRetentionPeriod"] == settings.SQS_DLQ_RETENTION_SECONDS
    assert queue["MaximumMessageSize"] == dlq["MaximumMessageSize"] == settings.SQS_MAX_MESSAGE_BYTES
    for name in ("consumer", "processor"):
        env = container_env(containers()[name])
        assert int(env["SQS_VISIBILITY_TIMEOUT"]) == queue["VisibilityTimeout"]
        assert int(env["SQS_MAX_RECEIVE_COUNT"]) == queue["RedrivePolicy"]["maxReceiveCount"]


def test_orchestrators_wait_longer_for_a_stop_than_serve_gives_a_send_in_flight():
    grace = shutdown_grace_seconds()
    # The slowest send must fit in serve's grace, or warm shutdown would be cut short.
    assert settings.PROVIDER_CONNECT_TIMEOUT + settings.PROVIDER_READ_TIMEOUT < grace
    for name in ("consumer", "processor"):
        stop_timeout = containers()[name]["StopTimeout"]
        assert grace < stop_timeout <= 120, f"{name}: ECS StopTimeout {stop_timeout} (Fargate allows at most 120)"
    period = compose()["services"]["processor"]["stop_grace_period"]
    assert grace < int(period.removesuffix("s"))


def test_health_checks_use_the_image_check_and_the_load_balancer_asks_readyz():
    resources = template()["Resources"]
    assert resources["TargetGroup"]["Properties"]["HealthCheckPath"] == "/readyz"
    for name in ("consumer", "processor"):
        assert containers()[name]["HealthCheck"]["Command"] == ["CMD", "/app/docker/entrypoint.sh", "healthcheck"]
        assert containers()[name]["LinuxParameters"]["InitProcessEnabled"] is True
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["/app/docker/entrypoint.sh", "healthcheck"]' in dockerfile


def test_compose_starts_in_order():
    services = compose()["services"]
    built_with_healthcheck = {name for name, s in services.items() if s.get("image") == "mailer:local"}
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                has_check = "healthcheck" in services[dependency] or dependency in built_with_healthcheck
                assert has_check and not services[dependency].get("healthcheck", {}).get("disable"), (name, dependency)
            else:
                assert condition["condition"] == "service_completed_successfully", (name, dependency)
                assert "restart" not in services[dependency]
    for name in ("consumer", "processor"):
        assert services[name]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    assert services["setup"]["command"] == ["setup"]
    assert set(services["setup"]["depends_on"]) == {"postgres", "aws"}


def test_the_final_image_runs_as_a_numeric_non_root_user_and_installs_nothing():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.split("FROM ${PYTHON_IMAGE}\n", 1)[1]
    assert re.search(r"^USER 10001:10001$", final_stage, re.M)
    assert not re.search(r"apt-get|pip install|gcc|build-essential", final_stage)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", dockerfile, re.M)


def test_the_read_only_root_has_one_writable_place_which_the_image_declares_a_volume():
    # ECS copies an image's directory into a task's bind mount only where the image declares a
    # VOLUME; without one the task's /tmp is root's, mode 0755, and user 10001 cannot write it.
    # (tests/image/ runs the built image with the mount as Fargate makes it.)
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.split("FROM ${PYTHON_IMAGE}\n", 1)[1]
    assert re.search(r'^VOLUME \["/tmp"\]$', final_stage, re.M)
    for name, container in containers().items():
        assert container["ReadonlyRootFilesystem"] is True, name
        assert [m["ContainerPath"] for m in container["MountPoints"]] == ["/tmp"], name
    # Everything the service writes at run time goes there: the worker's heartbeat, MAILER_VAR_DIR.
    assert "MAILER_VAR_DIR=/tmp/mailer" in final_stage and "WORKER_HEARTBEAT_FILE=/tmp/mailer/" in final_stage


def test_compose_runs_every_service_of_the_image_read_only_with_tmp_in_memory():
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if s.get("image") == "mailer:local"}
    assert set(ours) == {"simulator", "setup", "consumer", "processor"}
    for name, service in ours.items():
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"] and service["init"] is True, name
    # Published on loopback only: the stack's secret key and open /metrics are for this machine.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_cloudformation_callback_queues_are_what_provision_queues_makes():
    resources = template()["Resources"]
    queue, dlq = resources["CallbackQueue"]["Properties"], resources["CallbackDeadLetterQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == settings.CALLBACK_VISIBILITY_TIMEOUT
    assert queue["RedrivePolicy"]["maxReceiveCount"] == settings.SQS_MAX_RECEIVE_COUNT
    assert queue["MessageRetentionPeriod"] == queues.MAIN_QUEUE_RETENTION_SECONDS
    assert dlq["MessageRetentionPeriod"] == settings.SQS_DLQ_RETENTION_SECONDS
    for name in ("consumer", "processor"):
        env = container_env(containers()[name])
        assert "CallbackQueue" in str(env["CALLBACK_QUEUE_NAME"]) and "CallbackDeadLetterQueue" in str(env["CALLBACK_DLQ_NAME"])
