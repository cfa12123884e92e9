"""The smaller findings of issue 23, against real processes over HTTP: a bad Host header is a
warning, not an error with a traceback; a key in the query string never reaches the access log;
gunicorn's own refusals are JSON; /metrics needs its token and the API a SECRET_KEY of the
operator's once the service binds beyond loopback; a local run keeps its own random key."""

import json
import os
import socket
import stat
import subprocess
import sys
import uuid

import pytest
import requests

from .embedded_services import free_port
from .support import ServiceProcess, service_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# One per WEB_SERVER_MODEL (mail/management/commands/serve.py).
WORKER_CLASSES = [
    "mailer_project.gunicorn_worker.JsonErrorsGeventWorker",
    "mailer_project.gunicorn_worker.JsonErrorsThreadWorker",
]


def raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send these) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


def test_a_bad_host_header_is_a_one_line_warning_and_a_query_string_key_is_not_logged(make_stack):
    stack = make_stack(LOG_FORMAT="json")
    api = stack.processes[-1]
    refused = requests.get(f"{stack.api_url}/api/v1/messages", headers={"Host": "attacker.example"}, timeout=10)
    assert refused.status_code == 400
    assert refused.json() == {"error": {"type": "bad_request", "message": "Bad request."}}

    key = stack.headers["Authorization"].removeprefix("Bearer ")
    message_url = f"{stack.api_url}/api/v1/messages/{uuid.uuid4()}"
    in_query = requests.get(message_url, params={"key": key, "api_key": "k2", "token": "t3", "page": "2"}, timeout=10)
    assert in_query.status_code == 401

    def logged():
        written = api.output()
        complete = written[: written.rfind("\n") + 1]  # not a line still being written
        lines = [json.loads(line) for line in complete.splitlines() if line.startswith("{")]
        access = [line["message"] for line in lines if line["logger"] == "gunicorn.access" and "page=2" in line["message"]]
        return access and (lines, access)

    # gunicorn writes its access line once the answer is sent: after Django's own lines.
    lines, access = wait_until(logged, what="the access-log line of the request with a key in its query string")
    host_lines = [line for line in lines if line["logger"] == "django.security.DisallowedHost"]
    assert len(host_lines) == 1 and host_lines[0]["level"] == "WARNING", host_lines
    assert "attacker.example" in host_lines[0]["message"] and "exc_info" not in host_lines[0]
    assert "Traceback" not in api.output()
    assert len(access) == 1 and "key=[redacted]&api_key=[redacted]&token=[redacted]&page=2" in access[0], access
    assert key not in api.output() and key.split(".")[1] not in api.output()


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_gunicorns_own_refusals_are_json_in_the_error_shape(tmp_path, worker_class):
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "mailer_project.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--worker-class", worker_class, "--workers", "1", "--no-control-socket",
    ]  # fmt: skip
    server = ServiceProcess(argv, service_env(), tmp_path / "gunicorn.log")
    try:
        server.wait_for_http(f"http://127.0.0.1:{port}/healthz")
        cases = {
            b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n": (414, "request_line_too_long"),
            b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(120)) + b"\r\n": (
                431,
                "header_fields_too_large",
            ),
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n": (431, "header_fields_too_large"),
            b"NOT HTTP AT ALL\r\n\r\n": (400, "bad_request"),
        }
        for request, (status, error_type) in cases.items():
            answer_status, headers, body = raw_answer(port, request)
            assert (answer_status, headers["content-type"]) == (status, "application/json"), body
            assert json.loads(body)["error"]["type"] == error_type and int(headers["content-length"]) == len(body)
        # Ordinary requests are the application's as before.
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        server.stop()


def serve_beyond_loopback(tmp_path, name: str, **env: str) -> tuple[ServiceProcess, str]:
    port = free_port()
    environment = {**service_env(MAILER_MODE="consumer", BIND_ADDRESS=f"0.0.0.0:{port}", WEB_WORKERS="1"), **env}
    for unset in ("METRICS_TOKEN", "SECRET_KEY", "HTTPS"):
        if unset not in env:
            environment.pop(unset, None)
    return ServiceProcess([sys.executable, "manage.py", "serve"], environment, tmp_path / f"{name}.log"), port


def test_beyond_loopback_metrics_need_a_token_and_the_api_a_secret_key(tmp_path):
    api, port = serve_beyond_loopback(tmp_path, "with-key", SECRET_KEY="s" * 60)
    try:
        api.wait_for_http(f"http://127.0.0.1:{port}/healthz")
        refused = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert refused.status_code == 404 and "METRICS_TOKEN" in refused.json()["error"]["message"]
    finally:
        api.stop()

    api, port = serve_beyond_loopback(tmp_path, "with-token", SECRET_KEY="s" * 60, METRICS_TOKEN="scrape-token")
    try:
        api.wait_for_http(f"http://127.0.0.1:{port}/healthz")
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 401
        scraped = requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer scrape-token"}, timeout=10)
        assert scraped.status_code == 200
    finally:
        api.stop()

    # No SECRET_KEY: the API does not start, and says why.
    api, port = serve_beyond_loopback(tmp_path, "without-key")
    api.process.wait(timeout=60)
    assert api.process.returncode != 0
    assert "is beyond loopback: set SECRET_KEY" in api.output()
    api.stop()


def test_a_local_run_without_secret_key_makes_one_private_key_and_keeps_it(tmp_path):
    env = {**service_env(MAILER_VAR_DIR=str(tmp_path / "var")), "DJANGO_SETTINGS_MODULE": "mailer_project.settings"}
    env.pop("SECRET_KEY", None)
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"

    def key_of_a_new_process() -> str:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return done.stdout.split()[-1]

    first, second = key_of_a_new_process(), key_of_a_new_process()
    assert first == second and len(first) >= 50
    assert "local-only-insecure" not in first
    key_file = tmp_path / "var" / "local-secret-key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
