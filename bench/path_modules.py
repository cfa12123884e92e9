"""Which of the service's modules one message passes through from POST to `sent`, traced in one
process: the API through Django's test client, the task read back from a local SQS server and
run in-process, every call into mail/, providers/ and mailer_project/ recorded.

    .venv/bin/python bench/path_modules.py .            # this checkout
    cd ../older && .venv/bin/python ../main/bench/path_modules.py .   # another checkout, from its own folder

Written for issue 15's closing note (docs/architecture.md gives the figures); it also runs against
a checkout from before the reshape (whose simulator was providers/simulator.py)."""

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def main(root: Path) -> None:
    sys.path.insert(0, str(root))
    sqs_port, simulator_port = free_port(), free_port()
    simulator = "devtools.simulator" if (root / "devtools").exists() else "providers.simulator"
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(sqs_port)], cwd=root, stderr=subprocess.DEVNULL
        ),
        subprocess.Popen([sys.executable, "-m", simulator, "--port", str(simulator_port)], cwd=root, stderr=subprocess.DEVNULL),
    ]
    try:
        trace(root, sqs_port, simulator_port)
    finally:
        for server in servers:
            server.terminate()


def trace(root: Path, sqs_port: int, simulator_port: int) -> None:
    var = tempfile.mkdtemp()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="mailer_project.settings",
        ALLOWED_HOSTS="testserver",
        SQS_ENDPOINT_URL=f"http://127.0.0.1:{sqs_port}",
        SQS_QUEUE_NAME="trace",
        SQS_DLQ_NAME="trace-dlq",
        S3_BUCKET="",
        DATABASE_URL=f"sqlite:///{var}/db.sqlite3",
        MAILER_VAR_DIR=var,
        SENDGRID_API_URL=simulator_url,
        SENDGRID_API_KEY="k",
        MAILGUN_API_URL=simulator_url,
        MAILGUN_API_KEY="k",
        MAILGUN_DOMAIN="d.example",
    )
    wait_for(f"http://127.0.0.1:{sqs_port}")
    wait_for(f"{simulator_url}/_simulator/health")

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from rest_framework_api_key.models import APIKey

    from mail import queues
    from mail.models import Message
    from mail.tasks import deliver

    call_command("migrate", verbosity=0)
    queue_url = queues.provision().queue_url
    try:
        from mail.keys import create as create_key  # a checkout with teams: a key needs its profile
    except ImportError:
        create_key = None  # an older checkout: the library's key alone
    _, key = create_key("trace") if create_key else APIKey.objects.create_key(name="trace")
    client, sqs = Client(), queues.sqs_client(read_timeout=20)
    body = json.dumps({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"})

    def post():
        return client.post("/api/v1/messages", data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")

    post()  # the first request of a process loads what the traced one would not
    sqs.purge_queue(QueueUrl=queue_url)
    ours = tuple(str(root / package) for package in ("mail", "providers", "mailer_project"))
    seen = set()

    def record(frame, event, arg):
        filename = frame.f_code.co_filename
        if event == "call" and filename.startswith(ours) and "/migrations/" not in filename:
            seen.add(os.path.relpath(filename, root))

    sys.setprofile(record)
    message_id = post().json()["id"]
    received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=3)["Messages"][0]
    args, kwargs = json.loads(base64.b64decode(json.loads(base64.b64decode(received["Body"]))["body"]))[:2]
    deliver.apply(args=args, kwargs=kwargs)
    sys.setprofile(None)

    print("status:", Message.objects.get(pk=message_id).status)
    for module in sorted(seen):
        print(f"{module:40} {len((root / module).read_text().splitlines()):5} lines")
    print(len(seen), "modules")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
