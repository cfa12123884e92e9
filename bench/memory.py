"""Memory of the deployed process trees (issue 21): `manage.py serve` in processor mode (the
supervisor, the mail worker, the callbacks' worker, the jobs process) and in consumer mode (the
supervisor, gunicorn's master and its workers), warm. Not a test: a measurement, written to
docs/benchmarks/memory.json.

    .venv/bin/python bench/memory.py                   # 3 runs, about 3 minutes (make bench-memory)
    .venv/bin/python bench/memory.py --runs 1 --messages 100

Each run starts both modes afresh, as deployed (production defaults, logs at INFO), on fauxqs and
the provider simulator, with a client endpoint listening for `message.sent` callbacks. It pushes
--messages messages through the API (single POSTs from several threads, so every gunicorn worker
serves some, and batches), waits until every one is sent and its callback delivered, drops an
unreadable message into the dead-letter queue for the drainer to record, lets housekeeping run,
then samples every process of both trees for --settle seconds. Per process: VmRSS at the end,
its peak (VmHWM, kept by the kernel), and PSS (/proc/<pid>/smaps_rollup: shared pages divided
among the processes that map them). The targets are stated in RSS per process, summed."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import psycopg
import requests
from callbacks import SlowReceiver, processor
from common import DEFAULT_DATABASE_URL, ROOT, local_servers, machine, manage, now, process_tree, service_process, status_kib

RESULTS = ROOT / "docs" / "benchmarks" / "memory.json"
TARGETS_MB = {"processor_tree": 250, "api_worker": 150}
DEADLINE_SECONDS = 180


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def role(pid: int, depth: int) -> str:
    """What a process of a `serve` tree is, from its command line and environment."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    words = [word.decode(errors="replace") for word in argv if word]
    if depth == 0:
        return "supervisor (serve)"
    if "celery" in words or "mailer_project.celery_worker" in words:  # Celery's command line, or serve's worker
        return "callbacks worker" if b"WORKER_CONSUMES=callbacks" in environment else "mail worker"
    if "jobs" in words:
        return "jobs (drain_dlq, housekeeping)"
    if "gunicorn" in words:
        return "gunicorn master" if depth == 1 else "API worker"
    return " ".join(words)[:80]


class TreeWatch:
    """Every process of a tree, sampled: its RSS now, its peak (VmHWM), its PSS now."""

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self.seen: dict[int, dict] = {}

    def sample(self) -> None:
        for pid, depth in process_tree(self.root_pid):
            row = self.seen.setdefault(pid, {"role": role(pid, depth), "pid": pid})
            rss, hwm, pss = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"), pss_kib(pid)
            if rss:
                row.update(rss_kib=rss, pss_kib=pss, hwm_kib=max(hwm, row.get("hwm_kib", 0)), alive=True)
            else:
                row["alive"] = False

    def report(self) -> dict:
        # A process that came and went (none in a steady tree) is left out of the sums.
        rows = [row for row in self.seen.values() if row.get("alive")]
        processes = [
            {
                "role": row["role"],
                **{key.replace("_kib", "_mb"): round(row[key] / 1024, 1) for key in ("rss_kib", "hwm_kib", "pss_kib")},
            }
            for row in sorted(rows, key=lambda row: row["pid"])
        ]
        return {
            "processes": processes,
            **{f"tree_{what}_mb": round(sum(p[f"{what}_mb"] for p in processes), 1) for what in ("rss", "hwm", "pss")},
        }


def single(n: int) -> dict:
    return {"from": "bench@example.com", "to": f"rcpt{n}@example.com", "subject": f"memory {n}", "text": "hello " * 150}


def push_messages(api_url: str, key: str, count: int) -> list[str]:
    """Half as single POSTs from 8 threads (every gunicorn worker takes some), half in batches."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    singles = count // 2

    def post(n: int) -> str:
        answer = session.post(f"{api_url}/api/v1/messages", json=single(n), timeout=30)
        answer.raise_for_status()
        return answer.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(post, range(singles)))
    for start in range(singles, count, 100):
        answer = session.post(
            f"{api_url}/api/v1/messages/batch", json=[single(n) for n in range(start, min(count, start + 100))], timeout=60
        )
        answer.raise_for_status()
        ids += [item["id"] for item in answer.json()["data"]]
    return ids


def wait_until(what: str, condition, watches: dict) -> None:
    """Poll the condition, sampling the trees meanwhile (a peak while they work is kept too)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        for watch in watches.values():
            watch.sample()
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {DEADLINE_SECONDS} s: {what}")
        time.sleep(0.2)


def run_once(servers, args, receiver: SlowReceiver, run_number: int) -> dict:
    queue = f"bench-memory-{uuid.uuid4().hex[:8]}"
    env = {
        **servers.env,
        "SQS_QUEUE_NAME": queue,
        "SQS_DLQ_NAME": f"{queue}-dlq",
        "LOG_LEVEL": "INFO",
        "API_RATE_LIMIT": "100000/min",
        "CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "CALLBACK_ALLOW_HTTP": "true",
        # As in the image: the worker's health-check heartbeat is on.
        "WORKER_HEARTBEAT_FILE": str(servers.log_dir / f"heartbeat-{run_number}"),
    }
    manage(env, "provision_queues")
    key = manage(env, "create_api_key", "bench memory").strip()
    log_dir = servers.log_dir
    with (
        service_process(env, "consumer", log_dir / f"consumer-{run_number}.log") as (api_url, consumer),
        processor(env, log_dir / f"processor-{run_number}.log") as serve,
    ):
        receiver.times.clear()
        requests.post(
            f"{api_url}/api/v1/webhooks",
            json={"url": receiver.url, "event_types": ["message.sent"]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).raise_for_status()
        watches = {"processor": TreeWatch(serve.pid), "consumer": TreeWatch(consumer.pid)}
        ids = push_messages(api_url, key, args.messages)
        sqs = boto3.client(
            "sqs",
            endpoint_url=env["SQS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        dlq_url = sqs.get_queue_url(QueueName=env["SQS_DLQ_NAME"])["QueueUrl"]
        marker = uuid.uuid4().hex
        sqs.send_message(QueueUrl=dlq_url, MessageBody=f"not a Celery message {marker}")
        with psycopg.connect(args.database_url, autocommit=True) as connection:

            def count(sql: str, *params) -> int:
                return connection.execute(sql, params).fetchone()[0]

            sent = "SELECT count(*) FROM mail_message WHERE status = 'sent' AND id = ANY(%s::uuid[])"
            wait_until("every message sent", lambda: count(sent, ids) == len(ids), watches)
            wait_until("every callback delivered", lambda: len(receiver.times) >= len(ids), watches)
            dead = "SELECT count(*) FROM mail_deadletter WHERE raw_body LIKE %s"
            wait_until("the dead letter recorded", lambda: count(dead, f"%{marker}") > 0, watches)
        settle_until = time.monotonic() + args.settle
        wait_until("the settling time", lambda: time.monotonic() > settle_until, watches)
        return {name: watch.report() for name, watch in watches.items()}


def medians(runs: list[dict], mode: str) -> dict:
    """Per role, the median over the runs of each figure (an API worker: the largest of a run's)."""
    by_role: dict[str, list[dict]] = {}
    for run in runs:
        largest: dict[str, dict] = {}
        for process in run[mode]["processes"]:
            if process["role"] not in largest or process["rss_mb"] > largest[process["role"]]["rss_mb"]:
                largest[process["role"]] = process
        for name, process in largest.items():
            by_role.setdefault(name, []).append(process)
    figures = ("rss_mb", "hwm_mb", "pss_mb")
    return {
        "per_process": {
            name: {f: round(statistics.median(p[f] for p in rows), 1) for f in figures} for name, rows in by_role.items()
        },
        **{f"tree_{f}": round(statistics.median(run[mode][f"tree_{f}"] for run in runs), 1) for f in figures},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--settle", type=float, default=15, help="seconds of sampling once the work is done")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    receiver = SlowReceiver(delay_ms=5)
    started = time.monotonic()
    with local_servers("fauxqs", args.database_url) as servers:
        runs = []
        for run_number in range(args.runs):
            runs.append(run_once(servers, args, receiver, run_number))
            print(f"run {run_number + 1}/{args.runs}: {json.dumps(runs[-1])}", file=sys.stderr)
    summary = {mode: medians(runs, mode) for mode in ("processor", "consumer")}
    results = {
        "what": (
            "manage.py serve in processor and consumer mode, warm (messages sent, callbacks delivered, a dead letter "
            "recorded): RSS, peak RSS (VmHWM) and PSS of every process, and their sums"
        ),
        "measured_at": now(),
        "machine": machine(),
        "sqs_server": servers.sqs_server,
        "parameters": {
            "runs": args.runs,
            "messages": args.messages,
            "settle_s": args.settle,
            "database": "PostgreSQL on loopback",
        },
        "targets_mb": TARGETS_MB,
        "medians": summary,
        "runs": runs,
        "wall_seconds": round(time.monotonic() - started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary, indent=2), file=sys.stderr)
    print(f"wrote {args.out} (service logs in {servers.log_dir})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
