"""The commands a Django and Celery user types, working as typed: the plain `celery -A
mailer_project worker` (with no pool, and with each pool named), `manage.py runserver` beside it,
and the one way a worker could hang (gevent without its monkey-patching) refused at start. Real
processes, the SQS-compatible server, the provider simulator."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.net import free_port

from .stack import mail_body
from .support import ServiceProcess, Simulator, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CELERY = str(Path(sys.executable).parent / "celery")  # the console script, as a user types it
# As docs/operations.md documents it.
WORKER = [CELERY, "-A", "mailer_project", "worker", "-l", "info"]


@pytest.mark.parametrize(
    "pool", [None, "gevent", "threads", "prefork"], ids=["no pool named", "-P gevent", "-P threads", "-P prefork"]
)
def test_the_plain_celery_worker_delivers(make_stack, pool):
    stack = make_stack()
    worker = stack.start_command([*WORKER, *(["-P", pool] if pool else [])], "celery")
    message_id = stack.post(mail_body("plain worker"))
    stack.wait_for_status(message_id, "sent")
    output = worker.output()
    # Celery's banner names the pool's module: ".> concurrency: 4 (thread)".
    expected_pool = {None: "prefork", "gevent": "gevent", "threads": "thread", "prefork": "prefork"}[pool]
    assert f"concurrency: 4 ({expected_pool})" in output
    assert "shouldn't be used to select the eventlet/gevent pools" not in output
    assert "Traceback" not in output


def test_a_worker_sized_auto_delivers(make_stack):
    # `-c auto` is Celery's word for "as many as the machine takes"; it is a number only later.
    stack = make_stack()
    stack.start_command([*WORKER, "-P", "threads", "-c", "auto"], "celery", env={**stack.env, "WORKER_CONCURRENCY": "0"})
    stack.wait_for_status(stack.post(mail_body("auto")), "sent")


@pytest.mark.parametrize("pool,concurrency", [("threads", "64 (thread)"), ("prefork", f"{os.cpu_count()} (prefork)")])
def test_without_worker_concurrency_the_pool_sizes_itself(make_stack, pool, concurrency):
    # 64 sends in flight as threads (or greenlets); as processes, Celery's own one per core.
    stack = make_stack()
    worker = stack.start_command([*WORKER, "-P", pool], "celery", env={**stack.env, "WORKER_CONCURRENCY": "0"})
    assert f"concurrency: {concurrency}" in worker.output()


def test_a_gevent_worker_without_its_patching_refuses_to_start(make_stack, tmp_path):
    stack = make_stack()
    # Celery patches for gevent only when its own `__main__` sees `-P gevent`; started any other
    # way the gevent pool would block on its first network call, ready but delivering nothing.
    unpatched = [
        sys.executable,
        "-c",
        "import sys; from celery.bin.celery import main; sys.argv[0] = 'celery'; main()",
        *WORKER[1:],
        "-P",
        "gevent",
    ]
    done = subprocess.run(unpatched, env=stack.env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "The gevent pool needs gevent's monkey-patching" in done.stdout + done.stderr
    assert "celery -A mailer_project worker --pool gevent" in done.stdout + done.stderr


def test_runserver_and_the_plain_worker_with_the_local_provider_settings(make_stack, tmp_path, simulator):
    """The development pair, configured the way `make services` configures it: the provider
    simulator writes the settings that send to it, and neither command is given any."""
    stack = make_stack()
    var_dir = tmp_path / "var"
    port = free_port()
    local_simulator = ServiceProcess(
        [
            sys.executable,
            "-m",
            "devtools.simulator",
            "--port",
            str(port),
            "--settings-file",
            str(var_dir / "local-providers.env"),
        ],
        stack.env,
        tmp_path / "simulator.log",
    )
    local_simulator.wait_for_http(f"http://127.0.0.1:{port}/_simulator/health")
    env = {name: value for name, value in stack.env.items() if not name.startswith(("SENDGRID_", "MAILGUN_"))}
    env["MAILER_VAR_DIR"] = str(var_dir)
    try:
        stack.start_command(WORKER, "celery", env=env)
        api_port = free_port()
        runserver = stack.start_command(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{api_port}"], "runserver", wait_for=None, env=env
        )
        runserver.wait_for_http(f"http://127.0.0.1:{api_port}/healthz")
        stack.api_url = f"http://127.0.0.1:{api_port}"

        message_id = stack.post(mail_body("from runserver"))
        stack.wait_for_status(message_id, "sent")
        local = wait_until(lambda: Simulator(f"http://127.0.0.1:{port}").requests(), what="the local simulator's request")
        assert local[0]["json"]["personalizations"][0]["custom_args"]["mailer_message_id"] == message_id
        assert simulator.requests() == []  # not the test run's own simulator: the file's settings were used
    finally:
        local_simulator.stop()


def test_the_local_provider_settings_yield_to_the_environment(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    (var_dir / "local-providers.env").write_text(
        "# written by the simulator\nSENDGRID_API_URL=http://127.0.0.1:1\nSENDGRID_API_KEY=simulator\n"
    )
    code = "from django.conf import settings; print(settings.SENDGRID_API_URL, settings.SENDGRID_API_KEY)"
    base = {**os.environ, "MAILER_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "mailer_project.settings"}
    base = {k: v for k, v in base.items() if not k.startswith("SENDGRID_")}

    def read(**env):
        done = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert read() == "http://127.0.0.1:1 simulator"  # a local run, nothing set: the simulator
    assert read(SENDGRID_API_KEY="SG.real") == "https://api.sendgrid.com SG.real"  # the provider is the environment's
    assert read(SQS_ENDPOINT_URL="") == "https://api.sendgrid.com"  # not a local run: the file is not read
