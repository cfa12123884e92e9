"""Starts, once per test run, the real servers the tests talk to: moto's SQS-compatible server and
the provider simulator, each on a free loopback port, as separate processes.

A pytest plugin (loaded with -p) rather than a fixture because Django's settings, like
production's, come from the environment when they are first read, which pytest-django does
before any conftest runs. Tests never reach AWS or a real provider: whatever the shell had set
for them is overridden here."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from devtools.net import free_port
from mail.supervisor import wait_for_http

__all__ = ["free_port", "start_moto"]

_processes: list[subprocess.Popen] = []


def start_server(argv: list[str], health_url: str, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _processes.append(process)
    wait_for_http(health_url, timeout=60, process=process)
    return process


def start_moto(log_dir: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(
        [sys.executable, "-m", "devtools.aws", "-H", "127.0.0.1", "-p", str(port)], url, log_dir / f"moto-{port}.log"
    )
    return url, process


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if not any(getattr(early_config.known_args_namespace, flag, False) for flag in ("help", "version")):
        log_dir = Path(tempfile.mkdtemp(prefix="mailer-test-servers-"))
        simulator_port = free_port()
        simulator_url = f"http://127.0.0.1:{simulator_port}"
        moto_url = start_moto(log_dir)[0]
        os.environ.update(
            SQS_ENDPOINT_URL=moto_url,
            S3_ENDPOINT_URL=moto_url,
            S3_BUCKET="mailer-test",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
            SENDGRID_API_URL=simulator_url,
            SENDGRID_API_KEY="test-sendgrid-key",
            MAILGUN_API_URL=simulator_url,
            MAILGUN_API_KEY="test-mailgun-key",
            MAILGUN_DOMAIN="test.example.com",
            SES_ENDPOINT_URL=moto_url,
            MAILER_TEST_SIMULATOR_URL=simulator_url,
            MAILER_TEST_SERVER_LOGS=str(log_dir),
        )
        start_server(
            [sys.executable, "-m", "devtools.simulator", "--port", str(simulator_port)],
            f"{simulator_url}/_simulator/health",
            log_dir / "simulator.log",
        )
    return (yield)


def pytest_unconfigure(config):
    for process in _processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
