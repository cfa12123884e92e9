"""Delivery throughput of one processor process, per Celery pool and concurrency, beside the
common stack (django-anymail's SendGrid backend in a plain Celery task), on the same SQS server
and provider simulator (issue 10). Not a test: a measurement, written to
docs/benchmarks/delivery.json.

    .venv/bin/python bench/delivery.py                      # the default grid, 3 runs each
    .venv/bin/python bench/delivery.py --configs threads:32 --stacks mailer --runs 1

Each run fills a queue with --messages messages first (Mailer's through its batch API, so every
one has its row; the common stack's with its task's apply_async), then starts one worker and
reads the simulator's counters while it drains the queue: the rate is the accepted sends between
the simulator's first and last request, so worker start-up is not counted. The simulator answers
every send after --latency-ms, as a real provider takes its time, and counts the TCP connections
the sends came on. The worker's peak RSS is read from /proc (VmHWM) for each process of its tree."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from common import DEFAULT_DATABASE_URL, ROOT, MemoryWatch, Servers, local_servers, machine, manage, median_of, now, service

RESULTS = ROOT / "docs" / "benchmarks" / "delivery.json"
PLOT = ROOT / "docs" / "benchmarks" / "delivery.png"
BENCH_DIR = ROOT / "bench"
DEFAULT_CONFIGS = "threads:8,threads:32,gevent:32,gevent:64,gevent:128,prefork:4"
BATCH_SIZE = 100  # the batch API's limit


def message(n: int) -> dict:
    return {
        "from": "Bench <bench@example.com>",
        "to": f"rcpt{n}@example.com",
        "subject": f"Benchmark message {n}",
        "text": "A benchmark message of a typical transactional size. " * 16,
    }


# --- the two stacks --------------------------------------------------------------------------


class MailerStack:
    """Mailer's processor: `manage.py serve` in processor mode, as deployed."""

    name = "mailer"

    def __init__(self, servers: Servers):
        self.servers = servers
        self.key = manage(servers.env, "create_api_key", "bench delivery").strip()

    def new_queue(self) -> None:
        # A queue per run: a stopped worker's last long poll stays open on the server for up to
        # its wait time, and would take (and strand until the visibility timeout) messages of the
        # next run on the same queue.
        queue = f"bench-delivery-{uuid.uuid4().hex[:8]}"
        self.env = {
            **self.servers.env,
            "SQS_QUEUE_NAME": queue,
            "SQS_DLQ_NAME": f"{queue}-dlq",
            # The API is only the loader here.
            "WEB_WORKERS": "1",
            "API_RATE_LIMIT": "100000/min",
        }
        manage(self.env, "provision_queues")

    def fill(self, count: int) -> None:
        """Through the batch API, so every message has its row as in production."""
        with service(self.env, "consumer", self.servers.log_dir / "delivery-consumer.log") as api_url:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.key}"
            for start in range(0, count, BATCH_SIZE):
                batch = [message(n) for n in range(start, min(count, start + BATCH_SIZE))]
                session.post(f"{api_url}/api/v1/messages/batch", json=batch, timeout=60).raise_for_status()

    def worker(self, pool: str, concurrency: int, log) -> subprocess.Popen:
        # Logging as in production (INFO: a JSON line per message sent).
        env = {
            **self.env,
            "MAILER_MODE": "processor",
            "WORKER_POOL": pool,
            "WORKER_CONCURRENCY": str(concurrency),
            "LOG_LEVEL": "INFO",
        }
        return subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class AnymailStack:
    """django-anymail's SendGrid backend in a plain Celery task (bench/anymail_stack)."""

    name = "anymail"

    def __init__(self, servers: Servers):
        self.servers = servers

    def new_queue(self) -> None:
        # Created by kombu on first use, as a plain Celery app does.
        self.env = {**self.servers.env, "SQS_QUEUE_NAME": f"bench-anymail-{uuid.uuid4().hex[:8]}", "PYTHONPATH": str(BENCH_DIR)}

    def fill(self, count: int) -> None:
        code = (
            "import sys, json; from anymail_stack.tasks import app, send\n"
            "messages = json.load(sys.stdin)\n"
            "with app.producer_or_acquire() as producer:\n"
            "    for m in messages: send.apply_async((m['to'], m['subject'], m['text']), producer=producer)\n"
        )
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=BENCH_DIR,
            env=self.env,
            check=True,
            text=True,
            input=json.dumps([message(n) for n in range(count)]),
        )

    def worker(self, pool: str, concurrency: int, log) -> subprocess.Popen:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "anymail_stack.tasks",
            "--quiet",
            "worker",
            "--loglevel",
            "WARNING",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        return subprocess.Popen(argv, cwd=BENCH_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


# --- one run ---------------------------------------------------------------------------------


def simulator_stats(servers: Servers) -> dict:
    return requests.get(f"{servers.simulator_url}/_simulator/stats", timeout=10, verify=servers.verify).json()["sendgrid"]


def run_once(stack, pool: str, concurrency: int, args, servers: Servers, label: str) -> dict:
    stack.new_queue()
    stack.fill(args.messages)
    requests.delete(f"{servers.simulator_url}/_simulator/requests", timeout=10, verify=servers.verify).raise_for_status()
    with open(servers.log_dir / f"{label}.log", "wb") as log:
        worker = stack.worker(pool, concurrency, log)
    memory = MemoryWatch(worker.pid)
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            memory.sample()
            stats = simulator_stats(servers)
            if stats["accepted"] >= args.messages or time.monotonic() > deadline or worker.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        memory.sample()
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    span = (stats["last_received_at"] or 0) - (stats["first_received_at"] or 0)
    complete = stats["accepted"] >= args.messages
    if not complete:
        print(f"incomplete: {stats['accepted']} of {args.messages} sent; left out of the medians", file=sys.stderr, end=" ")
    return {
        # A run cut short (timeout, a worker that died) is kept for the record, not in the medians.
        "complete": complete,
        "delivered": stats["accepted"],
        "provider_requests": stats["requests"],
        "seconds": round(span, 2),
        "messages_per_second": round((stats["accepted"] - 1) / span, 1) if span > 0 else None,
        "new_connections": stats["connections"],
        "reused_connection_share": round(1 - stats["connections"] / stats["requests"], 4) if stats["requests"] else None,
        "memory": memory.report(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1500, help="messages per run")
    parser.add_argument("--latency-ms", type=int, default=100, help="how long the simulated provider takes to answer")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="pool:concurrency,...")
    parser.add_argument("--stacks", default="mailer,anymail")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the medians are reported")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--sqs", choices=["fauxqs", "moto"], default="fauxqs")
    parser.add_argument(
        "--provider-protocol",
        choices=["https", "http"],
        default="https",
        help="https as the real providers (a new connection costs a TLS handshake), or plain http",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args()
    configs = [(pool, int(concurrency)) for pool, concurrency in (c.split(":") for c in args.configs.split(","))]

    results = {
        "what": "messages per second delivered by one worker process draining a full queue; "
        "the provider simulator answers each send after latency_ms",
        "measured_at": now(),
        "machine": machine(),
        "messages_per_run": args.messages,
        "latency_ms": args.latency_ms,
        "provider_protocol": args.provider_protocol,
        "runs_per_configuration": args.runs,
        "results": [],
    }
    with local_servers(args.sqs, args.database_url, provider_tls=args.provider_protocol == "https") as servers:
        results["sqs_server"] = servers.sqs_server
        behaviour = {"latency_ms": args.latency_ms}
        requests.put(
            f"{servers.simulator_url}/_simulator/behaviour/sendgrid", json=behaviour, timeout=5, verify=servers.verify
        ).raise_for_status()
        stacks = [cls(servers) for cls in (MailerStack, AnymailStack) if cls.name in args.stacks.split(",")]
        # Stacks side by side per configuration, so a change in the machine's load hits both.
        for pool, concurrency in configs:
            for stack in stacks:
                runs = []
                for n in range(args.runs):
                    label = f"{stack.name}-{pool}-{concurrency}-{n}"
                    print(f"{label} ...", file=sys.stderr, end=" ", flush=True)
                    runs.append(run_once(stack, pool, concurrency, args, servers, label))
                    print(
                        f"{runs[-1]['messages_per_second']} msg/s, reused {runs[-1]['reused_connection_share']}, "
                        f"{runs[-1]['memory']['largest_process_mb']} MB",
                        file=sys.stderr,
                        flush=True,
                    )
                complete = [run for run in runs if run["complete"]]
                memory = [run["memory"] for run in complete]
                results["results"].append(
                    {
                        "stack": stack.name,
                        "pool": pool,
                        "concurrency": concurrency,
                        "messages_per_second": median_of(complete, "messages_per_second", 1),
                        "reused_connection_share": median_of(complete, "reused_connection_share", 4),
                        "largest_process_mb": median_of(memory, "largest_process_mb", 1),
                        "tree_total_mb": median_of(memory, "tree_total_mb", 1),
                        "runs": runs,
                    }
                )
                results["comparison"] = compare(results["results"])
                write(results, args.out)
    plot(results, args.plot)
    print(f"wrote {args.out} and {args.plot} (logs in {servers.log_dir})", file=sys.stderr)


def compare(rows: list[dict]) -> dict:
    """What the issue's targets ask: Mailer against the common stack per configuration, and each
    stack's best."""
    by_config = {(row["pool"], row["concurrency"]): {} for row in rows}
    for row in rows:
        by_config[(row["pool"], row["concurrency"])][row["stack"]] = row["messages_per_second"]
    ratios = [
        {"pool": pool, "concurrency": concurrency, "mailer_over_anymail": round(rates["mailer"] / rates["anymail"], 2)}
        for (pool, concurrency), rates in by_config.items()
        if rates.get("mailer") and rates.get("anymail")
    ]

    def best(stack: str) -> dict | None:
        mine = [row for row in rows if row["stack"] == stack and row["messages_per_second"]]
        top = max(mine, key=lambda row: row["messages_per_second"], default=None)
        return {key: top[key] for key in ("pool", "concurrency", "messages_per_second")} if top else None

    return {"per_configuration": ratios, "best": {"mailer": best("mailer"), "anymail": best("anymail")}}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    rows = results["results"]
    configs = list(dict.fromkeys(f"{row['pool']}\n× {row['concurrency']}" for row in rows))
    figure, (rates, memory) = pyplot.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.38
    for offset, (stack, label) in enumerate((("mailer", "Mailer"), ("anymail", "anymail in a plain Celery task"))):
        mine = {f"{row['pool']}\n× {row['concurrency']}": row for row in rows if row["stack"] == stack}
        positions = [n + (offset - 0.5) * width for n in range(len(configs))]
        values = [mine[c]["messages_per_second"] or 0 if c in mine else 0 for c in configs]
        bars = rates.bar(positions, values, width, label=label)
        rates.bar_label(bars, fmt="%.0f", fontsize=7)
        memory.bar(positions, [mine[c]["largest_process_mb"] or 0 if c in mine else 0 for c in configs], width, label=label)
        if stack == "mailer":
            for position, config in zip(positions, configs, strict=True):
                share = mine.get(config, {}).get("reused_connection_share")
                if share is not None:
                    rates.annotate(
                        f"{share:.0%}",
                        (position, 0),
                        xytext=(0, 3),
                        textcoords="offset points",
                        ha="center",
                        fontsize=6,
                        color="white",
                    )
    protocol = results.get("provider_protocol", "http").upper()
    rates.set(
        ylabel="messages / s",
        title=f"Delivered by one worker process (provider over {protocol}, answers in {results['latency_ms']} ms)",
    )
    memory.set(ylabel="MB", title="Peak RSS of the largest worker process")
    for axes in (rates, memory):
        axes.set_xticks(range(len(configs)), configs, fontsize=8)
        axes.grid(axis="y", alpha=0.3)
    rates.legend(fontsize=8, loc="upper left")
    memory.legend(fontsize=8, loc="lower right")
    figure.suptitle(
        f"Delivery path, medians of {results['runs_per_configuration']} runs of {results['messages_per_run']} messages — "
        f"{results['sqs_server']}, {results['machine']}; white: Mailer's share of requests on reused connections",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write(results: dict, path: Path) -> None:
    """After every configuration, so a long run stopped half-way keeps what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
