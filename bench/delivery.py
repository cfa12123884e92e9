"""Delivery throughput of the processor, per Celery pool and concurrency and per number of worker
processes, beside the common stack (django-anymail's SendGrid backend in a plain Celery task), on
the same SQS server and provider simulator (issues 10 and 21). Not a test: a measurement, written
to docs/benchmarks/delivery.json.

    .venv/bin/python bench/delivery.py                      # the default grid, 3 runs each
    .venv/bin/python bench/delivery.py --configs threads:32 --stacks mailer --runs 1
    .venv/bin/python bench/delivery.py --configs gevent:64 --processes 1,2   # one worker, then two

Each run fills a queue with --messages messages first (Mailer's through its batch API, so every
one has its row; the common stack's with its task's apply_async), then starts --processes worker
processes side by side on it (Mailer's: `manage.py serve` in processor mode each, as that many
processor containers would run; the common stack's: `celery worker` each) and reads the
simulator's counters while they drain the queue: the rate is the accepted sends between the
simulator's first and last request, so worker start-up is not counted. The simulator answers
every send after --latency-ms, as a real provider takes its time, and counts the TCP connections
the sends came on. Each worker tree's CPU time per message delivered and every process's peak RSS
(VmHWM) are read from /proc."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
from common import (
    DEFAULT_DATABASE_URL,
    ROOT,
    MemoryWatch,
    Servers,
    cpu_seconds,
    local_servers,
    machine,
    manage,
    median_of,
    now,
    process_tree,
    serve_role,
    service,
)

RESULTS = ROOT / "docs" / "benchmarks" / "delivery.json"
PLOT = ROOT / "docs" / "benchmarks" / "delivery.png"
BENCH_DIR = ROOT / "bench"
DEFAULT_CONFIGS = "threads:8,threads:32,gevent:32,gevent:64,gevent:128,prefork:4"
BATCH_SIZE = 100  # the batch API's limit
# Often enough that the CPU window below starts and ends within a few dozen messages of its
# bounds, seldom enough that the polling (this process, the simulator's answers) costs little.
POLL_SECONDS = 0.2
# CPU per message is read over the middle of the drain: from the first poll at which the simulator
# has accepted CPU_SKIP_MESSAGES sends to the last poll at which it had accepted no more than all
# but CPU_SKIP_MESSAGES (a fifth at each end of a run of fewer than 500 messages). So the workers'
# start-up (imports, connections, the first long polls) is not in it, and the window has as many
# messages in flight at its end as at its start: received and claimed, their CPU partly spent,
# not yet counted by the simulator. A window ending at the last message would end with none in
# flight and so leave out the receiving of those in flight at its start.
CPU_SKIP_MESSAGES = 100


def cpu_window(messages: int) -> tuple[int, int]:
    skip = min(CPU_SKIP_MESSAGES, messages // 5)
    return skip, messages - skip


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
    role = staticmethod(serve_role)  # what each process of the tree is, for the memory report

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

    @staticmethod
    def mail_worker(root_pid: int) -> int | None:
        """The mail worker's pid: the tree also holds the supervisor, and the callbacks' worker
        that runs the dead-letter drainer and housekeeping (mail/management/commands/serve.py)."""
        return next((pid for pid, depth in process_tree(root_pid) if depth == 1 and serve_role(pid, 1) == "mail worker"), None)


class AnymailStack:
    """django-anymail's SendGrid backend in a plain Celery task (bench/anymail_stack)."""

    name = "anymail"
    role = None  # its processes are named by their command lines

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

    @staticmethod
    def mail_worker(root_pid: int) -> int | None:
        return root_pid  # the worker is the whole tree (with its children, under prefork)


# --- one run ---------------------------------------------------------------------------------


def simulator_stats(servers: Servers) -> dict:
    return requests.get(f"{servers.simulator_url}/_simulator/stats", timeout=10, verify=servers.verify).json()["sendgrid"]


@dataclass
class CpuPoint:
    """The CPU time the workers have used so far, when the simulator had accepted `delivered`
    sends: every process of each worker's tree (children included), and the mail workers alone
    (None if one could not be found). Two points give the CPU per message between them; read
    while the workers run, as an exited process's time is lost."""

    delivered: int
    at: float  # time.monotonic()
    tree_seconds: float
    mail_worker_seconds: float | None

    @classmethod
    def read(cls, stack, workers: list[subprocess.Popen], delivered: int) -> CpuPoint:
        # Each process read once: the mail workers' figure is a part of the same reading.
        seconds = {pid: cpu_seconds(pid) for worker in workers for pid, _ in process_tree(worker.pid)}
        mail_workers = [stack.mail_worker(worker.pid) for worker in workers]
        mail_worker_seconds = None
        if None not in mail_workers:
            mail_worker_seconds = sum(seconds.get(pid, 0.0) for root in mail_workers for pid, _ in process_tree(root))
        return cls(delivered, time.monotonic(), sum(seconds.values()), mail_worker_seconds)


def cpu_between(first: CpuPoint | None, last: CpuPoint | None) -> dict:
    messages = last.delivered - first.delivered if first and last else 0
    if messages <= 0 or last.at <= first.at:  # the drain went by between two polls
        return {
            "cpu_ms_per_message": None,
            "mail_worker_cpu_ms_per_message": None,
            "cpu_cores_used": None,
            "cpu_window_messages": 0,
        }
    tree = last.tree_seconds - first.tree_seconds
    mail_worker = None
    if first.mail_worker_seconds is not None and last.mail_worker_seconds is not None:
        mail_worker = round((last.mail_worker_seconds - first.mail_worker_seconds) * 1000 / messages, 2)
    return {
        # The whole trees: for Mailer, the supervisors and callbacks workers too.
        "cpu_ms_per_message": round(tree * 1000 / messages, 2),
        "mail_worker_cpu_ms_per_message": mail_worker,
        # CPU seconds per second over the window: how many of the machine's cores the trees kept busy.
        "cpu_cores_used": round(tree / (last.at - first.at), 2),
        "cpu_window_messages": messages,
    }


def stop(workers: list[subprocess.Popen]) -> None:
    """SIGTERM to each worker's process group at once (they wind down together), SIGKILL after 60 s."""
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):  # a worker that died, with its group
            os.killpg(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    for worker in workers:
        try:
            worker.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def run_once(stack, pool: str, concurrency: int, processes: int, args, servers: Servers, label: str) -> dict:
    stack.new_queue()
    stack.fill(args.messages)
    requests.delete(f"{servers.simulator_url}/_simulator/requests", timeout=10, verify=servers.verify).raise_for_status()
    workers = []
    for n in range(processes):
        with open(servers.log_dir / (f"{label}.log" if processes == 1 else f"{label}-worker{n}.log"), "wb") as log:
            workers.append(stack.worker(pool, concurrency, log))
    memory = MemoryWatch(*(worker.pid for worker in workers), role=stack.role)
    first = last = None
    window_start, window_end = cpu_window(args.messages)
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            memory.sample()
            stats = simulator_stats(servers)
            if window_start <= stats["accepted"] <= window_end:
                last = CpuPoint.read(stack, workers, stats["accepted"])
                first = first or last
            if (
                stats["accepted"] >= args.messages
                or time.monotonic() > deadline
                or any(worker.poll() is not None for worker in workers)
            ):
                break
            time.sleep(POLL_SECONDS)
    finally:
        memory.sample()
        stop(workers)
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
        **cpu_between(first, last),
        "memory": memory.report(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1500, help="messages per run")
    parser.add_argument("--latency-ms", type=int, default=100, help="how long the simulated provider takes to answer")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="pool:concurrency,...")
    parser.add_argument(
        "--processes",
        default="1",
        help="worker processes side by side on one queue; with several counts (1,2) each is measured, in turn",
    )
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
    process_counts = [int(count) for count in args.processes.split(",")]

    results = {
        "what": "messages per second delivered by `processes` worker processes side by side draining one full "
        "queue; the provider simulator answers each send after latency_ms. CPU per message: the worker trees' "
        f"CPU time (user + system) over the messages accepted between the {CPU_SKIP_MESSAGES}th and the "
        f"{CPU_SKIP_MESSAGES}th before the last (a fifth at each end of a shorter run); mail_worker_: the mail "
        "workers' alone, without Mailer's supervisors and callbacks workers",
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
        for pool, concurrency in configs:
            # Run n of every stack and process count before run n + 1 of any, so a change in the
            # machine's load hits them all.
            runs = {(processes, stack.name): [] for processes in process_counts for stack in stacks}
            for n in range(args.runs):
                for processes in process_counts:
                    for stack in stacks:
                        label = f"{stack.name}-{pool}-{concurrency}-x{processes}-{n}"
                        print(f"{label} ...", file=sys.stderr, end=" ", flush=True)
                        run = run_once(stack, pool, concurrency, processes, args, servers, label)
                        runs[(processes, stack.name)].append(run)
                        print(
                            f"{run['messages_per_second']} msg/s, reused {run['reused_connection_share']}, "
                            f"CPU {run['cpu_ms_per_message']} ms/message (mail workers {run['mail_worker_cpu_ms_per_message']}, "
                            f"{run['cpu_cores_used']} cores), {run['memory']['largest_process_mb']} MB largest process",
                            file=sys.stderr,
                            flush=True,
                        )
            for (processes, stack_name), mine in runs.items():
                results["results"].append(config_row(stack_name, pool, concurrency, processes, mine))
            results["comparison"] = compare(results["results"])
            write(results, args.out)
    print_medians(results)
    plot(results, args.plot)
    print(f"wrote {args.out} and {args.plot} (logs in {servers.log_dir})", file=sys.stderr)


def config_row(stack: str, pool: str, concurrency: int, processes: int, runs: list[dict]) -> dict:
    """One configuration's medians over its complete runs, and the runs."""
    complete = [run for run in runs if run["complete"]]
    memory = [run["memory"] for run in complete]
    return {
        "stack": stack,
        "pool": pool,
        "concurrency": concurrency,
        "processes": processes,
        "messages_per_second": median_of(complete, "messages_per_second", 1),
        "reused_connection_share": median_of(complete, "reused_connection_share", 4),
        "cpu_ms_per_message": median_of(complete, "cpu_ms_per_message", 2),
        "mail_worker_cpu_ms_per_message": median_of(complete, "mail_worker_cpu_ms_per_message", 2),
        "largest_process_mb": median_of(memory, "largest_process_mb", 1),
        "tree_total_mb": median_of(memory, "tree_total_mb", 1),  # all the workers' trees together
        "runs": runs,
    }


def compare(rows: list[dict]) -> dict:
    """What the issues' targets ask: Mailer against the common stack per configuration (issue 10),
    each configuration with several worker processes against one (issue 21: two on two cores
    ≥ 1.7× one), and each stack's best."""
    rates: dict[tuple, float | None] = {
        (row["stack"], row["pool"], row["concurrency"], row["processes"]): row["messages_per_second"] for row in rows
    }
    ratios = [
        {"pool": pool, "concurrency": concurrency, "processes": processes, "mailer_over_anymail": round(rate / anymail, 2)}
        for (stack, pool, concurrency, processes), rate in rates.items()
        if stack == "mailer" and rate and (anymail := rates.get(("anymail", pool, concurrency, processes)))
    ]
    scaling = [
        {
            "stack": stack,
            "pool": pool,
            "concurrency": concurrency,
            "processes": processes,
            "over_one_process": round(rate / one, 2),
        }
        for (stack, pool, concurrency, processes), rate in rates.items()
        if processes != 1 and rate and (one := rates.get((stack, pool, concurrency, 1)))
    ]

    def best(stack: str) -> dict | None:
        mine = [row for row in rows if row["stack"] == stack and row["messages_per_second"]]
        top = max(mine, key=lambda row: row["messages_per_second"], default=None)
        return {key: top[key] for key in ("pool", "concurrency", "processes", "messages_per_second")} if top else None

    return {
        "per_configuration": ratios,
        "processes_over_one": scaling,
        "best": {"mailer": best("mailer"), "anymail": best("anymail")},
    }


def print_medians(results: dict) -> None:
    """The medians as a table on stderr, the process counts of a configuration one under the other."""
    scaling = {
        (s["stack"], s["pool"], s["concurrency"], s["processes"]): s["over_one_process"]
        for s in results["comparison"]["processes_over_one"]
    }
    columns = (
        "stack",
        "pool × concurrency",
        "processes",
        "msg/s",
        "÷ 1 process",
        "CPU ms/msg",
        "mail workers' ms/msg",
        "largest MB",
        "all trees MB",
    )
    lines = [columns]
    for row in results["results"]:
        key = (row["stack"], row["pool"], row["concurrency"], row["processes"])
        lines.append(
            (
                row["stack"],
                f"{row['pool']} × {row['concurrency']}",
                row["processes"],
                row["messages_per_second"],
                scaling.get(key, ""),
                row["cpu_ms_per_message"],
                row["mail_worker_cpu_ms_per_message"],
                row["largest_process_mb"],
                row["tree_total_mb"],
            )
        )
    widths = [max(len(str(line[n])) for line in lines) for n in range(len(columns))]
    for line in lines:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=True)), file=sys.stderr)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    rows = results["results"]

    def config_label(row: dict) -> str:
        processes = row.get("processes", 1)  # results written before --processes had one
        return f"{row['pool']}\n× {row['concurrency']}" + (f"\n{processes} processes" if processes != 1 else "")

    configs = list(dict.fromkeys(config_label(row) for row in rows))
    figure, (rates, cpu, memory) = pyplot.subplots(1, 3, figsize=(14, 4.4), gridspec_kw={"width_ratios": [3, 2, 2]})
    width = 0.38
    for offset, (stack, label) in enumerate((("mailer", "Mailer"), ("anymail", "anymail in a plain Celery task"))):
        mine = {config_label(row): row for row in rows if row["stack"] == stack}
        positions = [n + (offset - 0.5) * width for n in range(len(configs))]
        values = [mine[c]["messages_per_second"] or 0 if c in mine else 0 for c in configs]
        bars = rates.bar(positions, values, width, label=label)
        rates.bar_label(bars, fmt="%.0f", fontsize=7)
        bars = cpu.bar(
            positions, [(mine[c].get("cpu_ms_per_message") or 0) if c in mine else 0 for c in configs], width, label=label
        )
        cpu.bar_label(bars, fmt="%.1f", fontsize=7)
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
        title=f"Delivered by the worker processes\n(provider over {protocol}, answers in {results['latency_ms']} ms)",
    )
    cpu.set(ylabel="ms", title="CPU per message\n(the workers' whole process trees)")
    memory.set(ylabel="MB", title="Peak RSS\nof the largest worker process")
    for axes in (rates, cpu, memory):
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
