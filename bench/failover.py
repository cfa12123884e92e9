"""How long mail takes to reach Mailgun while SendGrid is down, with the circuit breaker and
without it (issue 7). Not a test: a measurement, written to docs/benchmarks/failover.json.

    .venv/bin/python bench/failover.py            # 200 messages per run, about 3 minutes

Each run starts its own stack on this machine: moto's SQS server, the provider simulator with
SendGrid answering 503 to everything, and `manage.py serve` (API + worker, production defaults:
3 retries from a 10 s base, 8 worker threads) on PostgreSQL, with the circuits in Redis for the
breaker run. It posts the messages at a steady rate and reads, from the database, the time from
accept (the row's created_at) to sent (sent_at) of each."""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mail.supervisor import Child, python_argv, stop_all, wait_for_http  # noqa: E402

RESULTS = ROOT / "docs" / "benchmarks" / "failover.json"
FAUXQS_VERSION = "1.9.2"
NODE_DIR = ROOT / "bench" / "node"


def sqs_server_argv(kind: str, port: int) -> tuple[list[str], dict]:
    """moto's server, or fauxqs (DESIGN §6: moto itself is the bottleneck of a throughput figure;
    fauxqs is several times faster). fauxqs comes from the npm registry into bench/node."""
    if kind == "moto":
        return python_argv("-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)), {}
    binary = NODE_DIR / "node_modules" / ".bin" / "fauxqs"
    if not binary.exists():
        subprocess.run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", f"fauxqs@{FAUXQS_VERSION}"], check=True)
    return [str(binary)], {"FAUXQS_PORT": str(port), "FAUXQS_LOGGER": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_s": round(statistics.median(values), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "max_s": round(max(values), 3),
    }


def run(label: str, breaker: bool, args, base_env: dict, simulator_url: str, log_dir: Path) -> dict:
    queue = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **base_env,
        "SQS_QUEUE_NAME": queue,
        "SQS_DLQ_NAME": f"{queue}-dlq",
        "BREAKER_ENABLED": "true" if breaker else "false",
        "REDIS_URL": args.redis_url if breaker else "",
        "MAILER_MODE": "all",
        "BIND_ADDRESS": f"127.0.0.1:{port}",
    }
    manage(env, "provision_queues")
    key = manage(env, "create_api_key", f"bench {label}").strip()
    requests.delete(f"{simulator_url}/_simulator/requests", timeout=5)
    requests.put(f"{simulator_url}/_simulator/behaviour/sendgrid", json={"status": 503}, timeout=5).raise_for_status()

    with open(log_dir / f"serve-{label}.log", "wb") as log:
        service = subprocess.Popen([sys.executable, "manage.py", "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 60, service)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        ids = []
        started = time.monotonic()
        for n in range(args.messages):
            # A steady rate, as an application sends: the n-th message goes at n / rate seconds.
            time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            body = {"from": "bench@example.com", "to": f"rcpt{n}@example.com", "subject": f"{label} {n}", "text": "benchmark"}
            response = session.post(f"http://127.0.0.1:{port}/api/v1/messages", json=body, timeout=30)
            response.raise_for_status()
            ids.append(response.json()["id"])
        rows = wait_for_outcomes(args.database_url, ids, args.timeout)
    finally:
        service.terminate()
        service.wait(timeout=90)

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
                    {"status": r[1], "provider": r[2], "created_at": r[3], "seconds": float(r[4]) if r[4] is not None else None, "first_skip": r[5]}
                    for r in rows
                ]
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="messages posted per second")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every message to be sent or failed")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mailerbench"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--sqs", choices=["fauxqs", "moto"], default="fauxqs", help="the SQS-compatible server")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    ensure_database(args.database_url)
    log_dir = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    sqs_port, simulator_port = free_port(), free_port()
    sqs_url, simulator_url = f"http://127.0.0.1:{sqs_port}", f"http://127.0.0.1:{simulator_port}"
    sqs_argv, sqs_env = sqs_server_argv(args.sqs, sqs_port)
    servers = [
        Child("sqs", sqs_argv, {**os.environ, **sqs_env}),
        Child("simulator", python_argv("-m", "providers.simulator", "--port", str(simulator_port))),
    ]
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "SQS_ENDPOINT_URL": sqs_url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "SENDGRID_API_URL": simulator_url,
        "SENDGRID_API_KEY": "bench",
        "MAILGUN_API_URL": simulator_url,
        "MAILGUN_API_KEY": "bench",
        "MAILGUN_DOMAIN": "bench.example.com",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    try:
        for child in servers:
            with open(log_dir / f"{child.name}.log", "wb") as log:
                child.process = subprocess.Popen(child.argv, cwd=ROOT, env=child.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_http(sqs_url, 60, servers[0].process)
        wait_for_http(f"{simulator_url}/_simulator/health", 60, servers[1].process)
        manage(env, "migrate", "--verbosity", "0")
        results = {
            "what": "SendGrid answering 503 to everything: seconds from accept to sent by Mailgun",
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
            "sqs_server": {"moto": "moto (moto[server]) on loopback", "fauxqs": f"fauxqs {FAUXQS_VERSION} on loopback"}[args.sqs],
            "settings": "production defaults: DELIVERY_MAX_RETRIES=3, DELIVERY_RETRY_BASE_SECONDS=10, WORKER_POOL=threads, WORKER_CONCURRENCY=8, BREAKER_* defaults",
            "rate_per_second": args.rate,
            "runs": {},
        }
        for label, breaker in (("with-breaker", True), ("without-breaker", False)):
            print(f"running {label} ...", file=sys.stderr)
            results["runs"][label] = run(label, breaker, args, env, simulator_url, log_dir)
            print(json.dumps(results["runs"][label], indent=2), file=sys.stderr)
    finally:
        stop_all(servers, grace_seconds=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} (service logs in {log_dir})", file=sys.stderr)


if __name__ == "__main__":
    main()
