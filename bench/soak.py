"""A bounded soak (issue 22): mail at a steady rate for a while, both providers failing at
random, the worker SIGKILLed now and then, and what became of every message. Not a test: a
measurement, written to docs/benchmarks/soak.json.

    .venv/bin/python bench/soak.py                         # 20 minutes at 5 messages a second
    .venv/bin/python bench/soak.py --minutes 2 --kill-every 40

Its own stack on this machine: moto's SQS server, the provider simulator (each provider failing
--failure-rate of requests with 500; accepted mail answered --answer-delay-ms late, so a kill
lands between acceptance and our `sent` write; a signed `processed` event posted to the API after
each acceptance unless --no-events), and `manage.py serve` twice, a consumer and a processor
(production defaults but short retry waits, AMBIGUOUS_GRACE_SECONDS 30). Every --kill-every
seconds the processor's worker is SIGKILLed, and the processor started again.

Reports: lost (neither sent nor failed once the load has drained), duplicated (accepted by the
providers more than once, from the simulator's own record), the messages recorded ambiguous and
resent, accept-to-sent latency, and the memory of the API and of each processor incarnation
(RSS when it had warmed up and when it ended)."""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import requests
from common import (
    DEFAULT_DATABASE_URL,
    ROOT,
    free_port,
    local_servers,
    machine,
    manage,
    now,
    process_tree,
    status_kib,
    summary,
    wait_for_http,
)
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

RESULTS = ROOT / "docs" / "benchmarks" / "soak.json"


def tree_rss_mb(pid: int) -> float:
    return round(sum(status_kib(p, "VmRSS") for p, _ in process_tree(pid)) / 1024, 1)


def start_serve(env: dict, mode: str, log_path: Path, port: int) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT,
            env={**env, "MAILER_MODE": mode, "BIND_ADDRESS": f"127.0.0.1:{port}"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_worker(processor: subprocess.Popen) -> None:
    """SIGKILL the Celery worker (and its pool) under the processor, as an OOM kill would; the
    supervisor then stops the rest and exits."""
    for pid, depth in process_tree(processor.pid):
        if depth == 1 and "celery" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            os.killpg(pid, signal.SIGKILL)
    processor.wait(timeout=90)


def accepted_per_message(simulator_url: str) -> collections.Counter:
    counts = collections.Counter()
    for request in requests.get(f"{simulator_url}/_simulator/requests", params={"accepted": "true"}, timeout=60).json():
        if request["provider"] == "sendgrid":
            counts[request["json"]["personalizations"][0]["custom_args"]["mailer_message_id"]] += 1
        else:
            counts[request["form"]["v:mailer_message_id"][0]] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=5.0, help="messages posted per second")
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--answer-delay-ms", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=120.0, help="seconds between SIGKILLs of the worker (0: none)")
    parser.add_argument("--no-events", action="store_true", help="no provider webhooks: ambiguity waits out its grace")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    sendgrid_public = base64.b64encode(
        sendgrid_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    mailgun_key = secrets.token_hex(16)
    with local_servers("moto", args.database_url) as servers:
        queue = f"soak-{uuid.uuid4().hex[:8]}"
        env = {
            **servers.env,
            "SQS_QUEUE_NAME": queue,
            "SQS_DLQ_NAME": f"{queue}-dlq",
            "DELIVERY_RETRY_BASE_SECONDS": "2",
            "AMBIGUOUS_GRACE_SECONDS": "30",
            "AMBIGUOUS_RECHECK_SECONDS": "5",
            "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid_public,
            "MAILGUN_WEBHOOK_SIGNING_KEY": mailgun_key,
            "WORKER_CONCURRENCY": "16",
        }
        manage(env, "provision_queues")
        key = manage(env, "create_api_key", "soak").strip()
        simulator = servers.simulator_url
        api_port = free_port()
        api = start_serve(env, "consumer", servers.log_dir / "consumer.log", api_port)
        base = f"http://127.0.0.1:{api_port}"
        wait_for_http(f"{base}/healthz", 60, api)
        for provider in ("sendgrid", "mailgun"):
            behaviour = {"status": 500, "failure_rate": args.failure_rate, "answer_delay_ms": args.answer_delay_ms}
            requests.put(f"{simulator}/_simulator/behaviour/{provider}", json=behaviour, timeout=5).raise_for_status()
        if not args.no_events:
            pem = sendgrid_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
            hooks = {"sendgrid": {"private_key_pem": pem}, "mailgun": {"signing_key": mailgun_key}}
            for provider, signing in hooks.items():
                config = {"url": f"{base}/webhooks/{provider}", **signing}
                requests.put(f"{simulator}/_simulator/webhooks/{provider}", json=config, timeout=5).raise_for_status()
        requests.put(f"{simulator}/_simulator/logs", json={"lag_ms": 600_000}, timeout=5).raise_for_status()

        incarnations = []
        processor = start_serve(env, "processor", servers.log_dir / "processor.log", free_port())
        started_at = time.monotonic()
        first_rss, kills = None, 0
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        api_rss_start, ids, n = None, [], 0
        last_kill = started_at
        while time.monotonic() - started_at < args.minutes * 60:
            time.sleep(max(0.0, started_at + n / args.rate - time.monotonic()))
            body = {"from": "soak@example.com", "to": f"rcpt{n}@example.com", "subject": f"soak {n}", "text": "soak"}
            response = session.post(f"{base}/api/v1/messages", json=body, timeout=30)
            response.raise_for_status()
            ids.append(response.json()["id"])
            n += 1
            elapsed = time.monotonic() - last_kill
            if first_rss is None and elapsed > 20:
                first_rss, api_rss_start = tree_rss_mb(processor.pid), api_rss_start or tree_rss_mb(api.pid)
            if args.kill_every and elapsed > args.kill_every:
                incarnations.append(
                    {"rss_warm_mb": first_rss, "rss_end_mb": tree_rss_mb(processor.pid), "seconds": round(elapsed)}
                )
                kill_worker(processor)
                kills += 1
                processor = start_serve(env, "processor", servers.log_dir / "processor.log", free_port())
                last_kill, first_rss = time.monotonic(), None
        posting_seconds = time.monotonic() - started_at
        incarnations.append(
            {"rss_warm_mb": first_rss, "rss_end_mb": tree_rss_mb(processor.pid), "seconds": round(time.monotonic() - last_kill)}
        )
        api_rss_end = tree_rss_mb(api.pid)

        deadline = time.monotonic() + args.drain_timeout
        with psycopg.connect(args.database_url, autocommit=True) as connection:
            while True:
                rows = connection.execute(
                    "SELECT id::text, status, EXTRACT(EPOCH FROM sent_at - created_at) FROM mail_message WHERE id = ANY(%s::uuid[])",
                    (ids,),
                ).fetchall()
                unfinished = [r for r in rows if r[1] not in ("sent", "failed")]
                if not unfinished or time.monotonic() > deadline:
                    break
                time.sleep(1)
            events = dict(
                connection.execute(
                    "SELECT type, count(DISTINCT message_id) FROM mail_messageevent WHERE message_id = ANY(%s::uuid[]) "
                    "AND type IN ('ambiguous', 'resent') GROUP BY type",
                    (ids,),
                ).fetchall()
            )
        accepted = accepted_per_message(simulator)
        processor.terminate()
        processor.wait(timeout=90)
        api.terminate()
        api.wait(timeout=90)

    statuses = collections.Counter(r[1] for r in rows)
    results = {
        "what": "a bounded soak: steady load, both providers failing at random, the worker SIGKILLed now and then",
        "measured_at": now(),
        "machine": machine(),
        "settings": {
            "minutes": args.minutes,
            "rate_per_second": args.rate,
            "failure_rate": args.failure_rate,
            "answer_delay_ms": args.answer_delay_ms,
            "kill_every_seconds": args.kill_every,
            "provider_events": not args.no_events,
            "env": "DELIVERY_RETRY_BASE_SECONDS=2 AMBIGUOUS_GRACE_SECONDS=30 AMBIGUOUS_RECHECK_SECONDS=5 WORKER_CONCURRENCY=16 (gevent)",
        },
        "posted": len(ids),
        "posting_seconds": round(posting_seconds, 1),
        "worker_kills": kills,
        "statuses": dict(statuses),
        "lost": sum(1 for r in rows if r[1] not in ("sent", "failed")),
        "duplicated": sum(1 for i in ids if accepted[i] > 1),
        "ambiguous_messages": events.get("ambiguous", 0),
        "resent_messages": events.get("resent", 0),
        "accept_to_sent": summary([float(r[2]) for r in rows if r[2] is not None]),
        "api_rss_mb": {"start": api_rss_start, "end": api_rss_end},
        "processor_incarnations": incarnations,
    }
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} (service logs in {servers.log_dir})", file=sys.stderr)


if __name__ == "__main__":
    main()
