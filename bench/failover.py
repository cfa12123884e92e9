"""How long mail takes to reach Mailgun while SendGrid is down, with the circuit breaker and
without it (issue 7). Not a test: a measurement, written to docs/benchmarks/failover.json.

    .venv/bin/python bench/failover.py            # 200 messages per run, about 3 minutes

Each run starts its own stack on this machine: moto's SQS server, the provider simulator with
SendGrid answering 503 to everything, and `manage.py serve` (API + worker, production defaults:
3 retries from a 10 s base; the worker pinned at 8 threads, the default when these figures
were first taken) on PostgreSQL, with the circuits in Redis for the breaker run. It posts the messages at a steady rate and reads, from the database, the time from
accept (the row's created_at) to sent (sent_at) of each."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import psycopg
import requests
from common import DEFAULT_DATABASE_URL, ROOT, Servers, local_servers, machine, manage, now, service, summary

RESULTS = ROOT / "docs" / "benchmarks" / "failover.json"


def run(label: str, breaker: bool, args, servers: Servers) -> dict:
    queue = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    env = {
        **servers.env,
        "SQS_QUEUE_NAME": queue,
        "SQS_DLQ_NAME": f"{queue}-dlq",
        "BREAKER_ENABLED": "true" if breaker else "false",
        # The worker these figures were first measured with (the default then); pinned so a rerun
        # compares like with like. The delivery benchmark measures the pools themselves.
        "WORKER_POOL": "threads",
        "WORKER_CONCURRENCY": "8",
        "REDIS_URL": args.redis_url if breaker else "",
    }
    manage(env, "provision_queues")
    key = manage(env, "create_api_key", f"bench {label}").strip()
    simulator_url = servers.simulator_url
    requests.delete(f"{simulator_url}/_simulator/requests", timeout=5)
    requests.put(f"{simulator_url}/_simulator/behaviour/sendgrid", json={"status": 503}, timeout=5).raise_for_status()

    with service(env, "all", servers.log_dir / f"serve-{label}.log") as base:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        ids = []
        started = time.monotonic()
        for n in range(args.messages):
            # A steady rate, as an application sends: the n-th message goes at n / rate seconds.
            time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            body = {"from": "bench@example.com", "to": f"rcpt{n}@example.com", "subject": f"{label} {n}", "text": "benchmark"}
            response = session.post(f"{base}/api/v1/messages", json=body, timeout=30)
            response.raise_for_status()
            ids.append(response.json()["id"])
        rows = wait_for_outcomes(args.database_url, ids, args.timeout)

    skips = [row["first_skip"] for row in rows if row["first_skip"]]
    opened = min(skips) if skips else None
    latencies = [row["seconds"] for row in rows if row["provider"] == "mailgun"]
    after_open = [row["seconds"] for row in rows if row["provider"] == "mailgun" and opened and row["created_at"] >= opened]
    sendgrid_calls = len(requests.get(f"{simulator_url}/_simulator/requests", params={"provider": "sendgrid"}, timeout=5).json())
    return {
        "breaker": breaker,
        "messages": len(ids),
        "sent_by_mailgun": len(latencies),
        "not_sent": sum(1 for row in rows if row["status"] != "sent"),
        "sendgrid_requests": sendgrid_calls,
        "accept_to_sent_all": summary(latencies),
        "accept_to_sent_once_open": summary(after_open),
    }


def wait_for_outcomes(database_url: str, ids: list[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            rows = connection.execute(
                """
                SELECT m.id, m.status, m.provider, m.created_at, EXTRACT(EPOCH FROM m.sent_at - m.created_at),
                       (SELECT min(e.created_at) FROM mail_messageevent e WHERE e.message_id = m.id AND e.type = 'skipped')
                FROM mail_message m WHERE m.id = ANY(%s::uuid[])
                """,
                (ids,),
            ).fetchall()
            done = [row for row in rows if row[1] in ("sent", "failed")]
            if len(done) == len(ids) or time.monotonic() > deadline:
                return [
                    {
                        "status": r[1],
                        "provider": r[2],
                        "created_at": r[3],
                        "seconds": float(r[4]) if r[4] is not None else None,
                        "first_skip": r[5],
                    }
                    for r in rows
                ]
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="messages posted per second")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every message to be sent or failed")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--sqs", choices=["fauxqs", "moto"], default="fauxqs", help="the SQS-compatible server")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with local_servers(args.sqs, args.database_url) as servers:
        results = {
            "what": "SendGrid answering 503 to everything: seconds from accept to sent by Mailgun",
            "measured_at": now(),
            "machine": machine(),
            "sqs_server": servers.sqs_server,
            "settings": "production defaults but the worker: DELIVERY_MAX_RETRIES=3, DELIVERY_RETRY_BASE_SECONDS=10, BREAKER_* defaults; WORKER_POOL=threads, WORKER_CONCURRENCY=8",
            "rate_per_second": args.rate,
            "runs": {},
        }
        for label, breaker in (("with-breaker", True), ("without-breaker", False)):
            print(f"running {label} ...", file=sys.stderr)
            results["runs"][label] = run(label, breaker, args, servers)
            print(json.dumps(results["runs"][label], indent=2), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} (service logs in {servers.log_dir})", file=sys.stderr)


if __name__ == "__main__":
    main()
