"""Callbacks under load (issue 17). Not a test: a bounded measurement, printed and written to
docs/benchmarks/callbacks.json.

    .venv/bin/python bench/callbacks.py                 # 1,000 callbacks, 200 mails
    .venv/bin/python bench/callbacks.py --callbacks 300 --mails 100

One `manage.py serve` in processor mode (the mail worker, the callbacks' worker, housekeeping) and
one consumer, on loopback servers (moto by default, bench/common.py). A client receiver in this
process answers each callback after --receiver-ms (50). It measures:

1. callbacks per second the callbacks' worker delivers: --callbacks pending deliveries are written
   to the outbox at once (as a burst of events would) and timed from the receiver's first request
   to its last;
2. the effect of those pending callbacks on mail: the time for --mails messages to go from the
   batch API to `sent`, with no callback pending, then while the --callbacks are being delivered."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import requests
from common import DEFAULT_DATABASE_URL, ROOT, local_servers, machine, manage, now, service

RESULTS = ROOT / "docs" / "benchmarks" / "callbacks.json"
BATCH_SIZE = 100
DEADLINE_SECONDS = 300  # every phase stops by itself


class SlowReceiver:
    def __init__(self, delay_ms: int):
        self.times: list[float] = []
        lock = threading.Lock()
        times = self.times

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay_ms / 1000)
                with lock:
                    times.append(time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# Written through the service's own code, as the delivery path writes them: a burst of outbox rows.
PENDING_SCRIPT = """
import sys, django; django.setup()
from mail.callbacks import outbox
from mail.callbacks.events import CallbackEvent
from mail.callbacks.models import Delivery
from django.utils import timezone
endpoint_id, count = sys.argv[1], int(sys.argv[2])
rows = []
for n in range(count):
    event = CallbackEvent(event_id=f"evt_bench_{endpoint_id[:8]}_{n}", type="message.delivered", occurred_at=timezone.now())
    rows.append(Delivery(endpoint_id=endpoint_id, event_id=event.event_id, event_type=event.type, payload=event.to_wire()))
Delivery.objects.bulk_create(rows)
ids = [row.id for row in rows]
for start in range(0, len(ids), 100):
    outbox.publish(ids[start:start + 100])
"""


def make_pending(env: dict, endpoint_id: str, count: int) -> None:
    subprocess.run(
        [sys.executable, "-c", PENDING_SCRIPT, endpoint_id, str(count)],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "mailer_project.settings"},
        check=True,
    )


@contextlib.contextmanager
def processor(env: dict, log_path):
    """`manage.py serve` in processor mode: the mail worker, the callbacks' worker, the jobs."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT,
            env={**env, "MAILER_MODE": "processor"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=120)


def mail(n: int) -> dict:
    return {"from": "bench@example.com", "to": f"rcpt{n}@example.com", "subject": f"bench {n}", "text": "hello " * 50}


def time_mails(api_url: str, key: str, count: int, database_url: str) -> float:
    """Seconds from the first batch POST until every one of these messages is sent."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    started = time.monotonic()
    ids = []
    for start in range(0, count, BATCH_SIZE):
        answer = session.post(
            f"{api_url}/api/v1/messages/batch", json=[mail(n) for n in range(start, min(count, start + BATCH_SIZE))], timeout=60
        )
        answer.raise_for_status()
        ids += [item["id"] for item in answer.json()["data"]]
    with psycopg.connect(database_url, autocommit=True) as connection:
        while time.monotonic() - started < DEADLINE_SECONDS:
            (sent,) = connection.execute(
                "SELECT count(*) FROM mail_message WHERE status = 'sent' AND id = ANY(%s::uuid[])", (ids,)
            ).fetchone()
            if sent == len(ids):
                return time.monotonic() - started
            time.sleep(0.05)
    raise TimeoutError("the mails were not all sent in time")


def wait_for(receiver: SlowReceiver, count: int) -> float:
    started = time.monotonic()
    while len(receiver.times) < count:
        if time.monotonic() - started > DEADLINE_SECONDS:
            raise TimeoutError(f"{len(receiver.times)} of {count} callbacks arrived")
        time.sleep(0.05)
    return count / max(receiver.times[count - 1] - receiver.times[0], 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=1000)
    parser.add_argument("--mails", type=int, default=200)
    parser.add_argument("--receiver-ms", type=int, default=50)
    parser.add_argument("--endpoint-concurrency", type=int, default=16, help="CALLBACK_ENDPOINT_CONCURRENCY")
    parser.add_argument("--worker-concurrency", type=int, default=16, help="CALLBACK_WORKER_CONCURRENCY")
    parser.add_argument("--sqs", choices=["moto", "fauxqs"], default="moto")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    receiver = SlowReceiver(args.receiver_ms)
    with local_servers(args.sqs, args.database_url) as servers:
        queue = f"bench-callbacks-{uuid.uuid4().hex[:8]}"
        env = {
            **servers.env,
            "SQS_QUEUE_NAME": queue,
            "SQS_DLQ_NAME": f"{queue}-dlq",
            "API_RATE_LIMIT": "100000/min",
            "CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
            "CALLBACK_ALLOW_HTTP": "true",
            "CALLBACK_ENDPOINT_CONCURRENCY": str(args.endpoint_concurrency),
            "CALLBACK_BUSY_DELAY_SECONDS": "1",
            "CALLBACK_WORKER_CONCURRENCY": str(args.worker_concurrency),
        }
        manage(env, "provision_queues")
        mail_key = manage(env, "create_api_key", "bench mail").strip()
        client_key = manage(env, "create_api_key", "bench callbacks").strip()
        log_dir = servers.log_dir
        with service(env, "consumer", log_dir / "consumer.log") as api_url, processor(env, log_dir / "processor.log"):
            endpoint = requests.post(
                f"{api_url}/api/v1/webhooks",
                json={"url": receiver.url, "event_types": ["message.delivered"]},
                headers={"Authorization": f"Bearer {client_key}"},
                timeout=30,
            ).json()
            receiver.times.clear()  # the test event
            time_mails(api_url, mail_key, 20, args.database_url)  # warm-up
            quiet = time_mails(api_url, mail_key, args.mails, args.database_url)
            make_pending(env, endpoint["id"], args.callbacks)
            busy = time_mails(api_url, mail_key, args.mails, args.database_url)
            pending_left = args.callbacks - len(receiver.times)
            rate = wait_for(receiver, args.callbacks)
    results = {
        "when": now(),
        "machine": machine(),
        "sqs_server": servers.sqs_server,
        "receiver_ms": args.receiver_ms,
        "callbacks": args.callbacks,
        "endpoint_concurrency": args.endpoint_concurrency,
        "worker_concurrency": args.worker_concurrency,
        "callbacks_per_second": round(rate, 1),
        "mails": args.mails,
        "mails_sent_seconds_without_callbacks": round(quiet, 2),
        "mails_sent_seconds_with_callbacks_pending": round(busy, 2),
        "callbacks_still_pending_when_the_mails_were_sent": pending_left,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
