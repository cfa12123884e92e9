"""Accept-path throughput and latency (issues 10 and 21): POST /api/v1/messages under load at
several concurrencies, beside the common accept stack (bench/accept_stack: a DRF view whose
serializer validates the same body and calls a Celery task's .delay() on the same SQS queue, under
the same gunicorn settings: the anchor) and beside the bare SQS publish rate at the same
concurrency (the limit neither can beat, since each 202 waits for one SQS publish). Not a test: a
measurement, written to docs/benchmarks/accept.json and plotted in docs/benchmarks/accept.png.

    .venv/bin/python bench/accept.py              # about 10 minutes (make bench-accept)
    .venv/bin/python bench/accept.py --runs 1 --duration 3 --concurrency 1 8 32   # a quick look
    .venv/bin/python bench/accept.py --server-model gthread   # both servers under gunicorn's gthread

Needs wrk (`apt-get install wrk`). One API (`manage.py serve`, MAILER_MODE=consumer, gunicorn as
WEB_WORKERS/WEB_CONNECTIONS set it, production defaults otherwise, logs at INFO as in production) on
PostgreSQL, fauxqs as SQS, no worker; the common stack under gunicorn with the same model
(--server-model, WEB_SERVER_MODEL), workers, connections (or threads) and keep-alive, its tokens in
a database of its own on the same PostgreSQL. For each run and concurrency N, each with an empty
queue: wrk with N connections POSTs a 1 KB message (bench/accept.lua) to the API, after a warm-up;
then the same to the common stack; then bench/sqs_publish_loop.py publishes bodies the size of the
API's task from N threads for as long. The median of the runs is reported. Then wrk paces N connections at half the API's peak rate, to read latency below
saturation. Last, the peak resident memory (VmHWM) of every process of both servers' trees."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from common import (
    DEFAULT_DATABASE_URL,
    ROOT,
    ensure_database,
    free_port,
    http_process,
    local_servers,
    machine,
    manage,
    median_of,
    now,
    process_tree,
    service_process,
    status_kib,
    tree_cpu_seconds,
)

RESULTS = ROOT / "docs" / "benchmarks" / "accept.json"
PLOT = ROOT / "docs" / "benchmarks" / "accept.png"
LUA_SCRIPT = ROOT / "bench" / "accept.lua"
PUBLISH_LOOP = ROOT / "bench" / "sqs_publish_loop.py"
BENCH_DIR = ROOT / "bench"


def message_body() -> bytes:
    """A typical transactional message of about 1 KB of JSON."""
    return json.dumps(
        {
            "from": "Shop <shop@example.com>",
            "to": ["Ann Example <ann@example.com>"],
            "subject": "Your order #10423 has shipped",
            "text": "Hello Ann,\n\nyour order is on its way. " + "Tracking and details follow. " * 22,
            "html": "<p>Hello Ann,</p><p>your order is on its way.</p>",
            "tags": ["orders"],
            "metadata": {"order_id": "10423"},
        }
    ).encode()


def run_wrk(base: str, connections: int, seconds: int, key: str, body_file: Path, rate: float = 0.0) -> dict:
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA_SCRIPT), base,
        "--", key, str(body_file), f"{rate:.3f}",
    ]  # fmt: skip
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    result = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    result["per_second"] = round(result["requests"] / result["duration_s"], 1)
    return result


def run_wrk_counting_cpu(server_pid: int, *args, **kwargs) -> dict:
    """run_wrk, adding the server's own CPU per request answered (its whole process tree): the
    cost of an accept, less sensitive to other work on the machine than the rate is."""
    before = tree_cpu_seconds(server_pid)
    result = run_wrk(*args, **kwargs)
    result["server_cpu_ms_per_request"] = round((tree_cpu_seconds(server_pid) - before) * 1000 / max(result["requests"], 1), 2)
    return result


def run_bare_loop(env: dict, queue_url: str, threads: int, seconds: int, warmup: int, body_bytes: int) -> dict:
    argv = [
        sys.executable, str(PUBLISH_LOOP), "--endpoint-url", env["SQS_ENDPOINT_URL"], "--queue-url", queue_url,
        "--threads", str(threads), "--duration", str(seconds), "--warmup", str(warmup), "--body-bytes", str(body_bytes),
    ]  # fmt: skip
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def task_body_bytes(sqs, queue_url: str) -> int:
    """The size SQS stores for one task: taken from the queue after a warm-up published some (all
    the same size, as the benchmark posts one message over and over)."""
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
    if not messages:
        raise SystemExit("no task in the queue after the warm-up: nothing was published")
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    return len(messages[0]["Body"].encode())


def empty_queue(sqs, queue_url: str) -> None:
    """Purge the queue once the requests still in flight when wrk stopped have published: when
    its count has held still for half a second (at most 15 s). Purged at once, their tasks would
    land in the next measurement's queue (and in its task-size reading)."""
    count, still_since, deadline = None, time.monotonic(), time.monotonic() + 15
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        now_count = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        if now_count != count:
            count, still_since = now_count, time.monotonic()
        elif time.monotonic() - still_since >= 0.5:
            break
        time.sleep(0.1)
    sqs.purge_queue(QueueUrl=queue_url)


# `manage.py serve` in consumer mode starts gunicorn, which forks its workers.
ROLES = {0: "supervisor (manage.py serve)", 1: "gunicorn master", 2: "gunicorn worker"}
# The common stack is gunicorn itself.
STACK_ROLES = {0: "gunicorn master", 1: "gunicorn worker"}


def peak_memory(pid: int, roles: dict = ROLES) -> list[dict]:
    """Each process of a server's tree: its role and its peak resident set so far (VmHWM), in MB."""
    processes = []
    for member, depth in process_tree(pid):
        peak_kb = status_kib(member, "VmHWM")
        processes.append({"pid": member, "role": roles.get(depth, "other"), "peak_rss_mb": round(peak_kb / 1024, 1)})
    return processes


# --- the common accept stack (bench/accept_stack) ---------------------------------------------


def stack_env(env: dict, database_url: str, queue_url: str) -> dict:
    return {
        **env,
        "PYTHONPATH": str(BENCH_DIR),
        "DJANGO_SETTINGS_MODULE": "accept_stack.settings",
        "ACCEPT_STACK_DATABASE_URL": database_url,
        "SQS_QUEUE_URL": queue_url,
    }


def stack_token(env: dict) -> str:
    """The common stack's tables migrated in its own database, and a user with a DRF token."""
    ensure_database(env["ACCEPT_STACK_DATABASE_URL"])
    django = [sys.executable, "-m", "django"]
    subprocess.run([*django, "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True, capture_output=True)
    code = (
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
        "user, _ = User.objects.get_or_create(username='bench'); print(Token.objects.get_or_create(user=user)[0].key)"
    )
    done = subprocess.run([*django, "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return done.stdout.split()[-1]


def stack_argv(bind: str, model: str, workers: int, connections: int, threads: int) -> list[str]:
    """gunicorn as `manage.py serve` runs the API (mail/management/commands/serve.py): the same
    model, started the same way (gevent's runner patches everything first, boto3 included), the
    same workers, connections or threads, timeouts and keep-alive; gunicorn's own worker classes,
    its access log on stdout as the API writes one."""
    if model == "gthread":
        start = ["-m", "gunicorn", "--worker-class", "gthread", "--threads", str(threads)]
    else:
        start = ["-m", "gevent.monkey", "--module", "gunicorn", "--worker-class", "gevent"]
    return [
        sys.executable, *start, "accept_stack.wsgi:application",
        "--bind", bind, "--workers", str(workers), "--worker-connections", str(connections),
        "--timeout", "60", "--graceful-timeout", "30", "--keep-alive", "5",
        "--access-logfile", "-", "--no-control-socket",
    ]  # fmt: skip


@contextlib.contextmanager
def stack_process(env: dict, argv_for_bind, log_path: Path):
    """The common stack running on a free port; yields (its base URL, the gunicorn master)."""
    port = free_port()
    # Any answer will do (404 at /): gunicorn and Django are up.
    with http_process(argv_for_bind(f"127.0.0.1:{port}"), env, log_path, port, "/") as started:
        yield started


def medians(runs: list[dict], concurrencies: list[int]) -> list[dict]:
    rows = []
    for connections in concurrencies:
        api = [run[str(connections)]["api"] for run in runs]
        stack = [run[str(connections)]["common_stack"] for run in runs]
        bare = [run[str(connections)]["bare_sqs"] for run in runs]
        api_rate, bare_rate = median_of(api, "per_second"), median_of(bare, "per_second")
        stack_rate = median_of(stack, "per_second")
        rows.append(
            {
                "concurrency": connections,
                "api_per_second": api_rate,
                "common_stack_per_second": stack_rate,
                "bare_sqs_per_second": bare_rate,
                "api_share_of_bare": round(api_rate / bare_rate, 3) if bare_rate else None,
                "api_over_common_stack": round(api_rate / stack_rate, 3) if stack_rate else None,
                "common_stack_share_of_bare": round(stack_rate / bare_rate, 3) if bare_rate else None,
                "api_p50_ms": median_of(api, "p50_ms"),
                "api_p95_ms": median_of(api, "p95_ms"),
                "api_p99_ms": median_of(api, "p99_ms"),
                "common_stack_p50_ms": median_of(stack, "p50_ms"),
                "common_stack_p99_ms": median_of(stack, "p99_ms"),
                "bare_sqs_p50_ms": median_of(bare, "p50_ms"),
                "bare_sqs_p99_ms": median_of(bare, "p99_ms"),
                "api_cpu_ms_per_request": median_of(api, "server_cpu_ms_per_request"),
                "common_stack_cpu_ms_per_request": median_of(stack, "server_cpu_ms_per_request"),
                "api_non_202": sum(point["non_202"] for point in api),
                "common_stack_non_202": sum(point["non_202"] for point in stack),
            }
        )
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    rows = results["medians"]
    x = [row["concurrency"] for row in rows]
    figure, (rates, latency) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    # One colour per contender in both panels: bare loop C0, API C1, common stack C2.
    rates.plot(x, [row["bare_sqs_per_second"] for row in rows], "o--", color="C0", label="bare boto3 SendMessage loop")
    rates.plot(x, [row["api_per_second"] for row in rows], "o-", color="C1", label="POST /api/v1/messages (202)")
    rates.plot(
        x, [row["common_stack_per_second"] for row in rows], "s-.", color="C2", label="common stack: DRF view + Celery .delay()"
    )
    rates.set(xscale="log", xlabel="concurrency (connections / threads)", ylabel="per second", title="Throughput")
    for name, prefix, style, colour in (
        ("API", "api", "o", "C1"),
        ("common stack", "common_stack", "s", "C2"),
        ("bare SQS", "bare_sqs", "o", "C0"),
    ):
        latency.plot(x, [row[f"{prefix}_p50_ms"] for row in rows], f"{style}-", color=colour, label=f"{name} p50")
        latency.plot(x, [row[f"{prefix}_p99_ms"] for row in rows], f"{style}:", color=colour, label=f"{name} p99")
    latency.set(xscale="log", yscale="log", xlabel="concurrency (connections / threads)", ylabel="ms", title="Latency")
    for axes in (rates, latency):
        axes.set_xticks(x, [str(value) for value in x])
        axes.minorticks_off()
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    rates.set_ylim(bottom=0)
    figure.suptitle(
        f"Accept path ({results['parameters']['server_model']}), medians of {results['parameters']['runs']} runs — "
        f"{results['sqs_server']}, {results['machine']}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--duration", type=int, default=6, help="measured seconds per point")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each measured point")
    parser.add_argument("--runs", type=int, default=3, help="the medians of this many runs are reported")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--sqs", choices=["fauxqs", "moto"], default="fauxqs", help="the SQS-compatible server")
    parser.add_argument(
        "--server-model",
        choices=["gevent", "gthread"],
        default=os.environ.get("WEB_SERVER_MODEL", "gevent"),
        help="gunicorn's workers for the API (WEB_SERVER_MODEL) and the common stack alike",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    body = message_body()
    body_file = Path(tempfile.mkstemp(prefix="mailer-accept-", suffix=".json")[1])
    body_file.write_bytes(body)
    started = time.monotonic()
    with local_servers(args.sqs, args.database_url) as servers:
        queue = f"bench-accept-{uuid.uuid4().hex[:8]}"
        env = {
            **servers.env,
            "SQS_QUEUE_NAME": queue,
            "SQS_DLQ_NAME": f"{queue}-dlq",
            # Production logs at INFO (an access line and an "accepted" line per request): measure that.
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            # The per-key rate limit is measured (one cache update per request) but never reached.
            "API_RATE_LIMIT": "1000000/s",
            "WEB_SERVER_MODEL": args.server_model,
        }
        manage(env, "provision_queues")
        key = manage(env, "create_api_key", "bench accept").strip()
        web = manage(
            env,
            "shell",
            "-c",
            "from django.conf import settings; print(settings.WEB_WORKERS, settings.WEB_CONNECTIONS, settings.WEB_THREADS)",
        ).split()[-3:]
        workers, connections_per_worker, threads = (int(value) for value in web)
        sqs = boto3.client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=env["SQS_ENDPOINT_URL"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        queue_url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        anchor_env = stack_env(env, args.database_url + "_accept_stack", queue_url)
        anchor_key = stack_token(anchor_env)
        results = {
            "what": (
                "POST /api/v1/messages (a 1 KB message) with wrk at each concurrency, beside the same POST to the common "
                "accept stack (bench/accept_stack: DRF view and serializer, TokenAuthentication in PostgreSQL, a Celery "
                "task's .delay() on the same SQS queue, same gunicorn settings) and a bare boto3 SendMessage loop with as "
                "many threads and bodies the size of the API's task, each with an empty queue; then wrk paced at half the "
                "API's peak rate; peak RSS of both servers' processes"
            ),
            "measured_at": now(),
            "machine": machine(),
            "sqs_server": servers.sqs_server,
            "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
            "parameters": {
                "concurrencies": args.concurrency,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "runs": args.runs,
                "server_model": args.server_model,
                "web_workers": workers,
                "web_connections": connections_per_worker,
                "web_threads": threads if args.server_model == "gthread" else None,
                "log_level": env["LOG_LEVEL"],
                "database": "PostgreSQL on loopback",
                "request_body_bytes": len(body),
            },
            "runs": [],
        }
        parameters = results["parameters"]

        def anchor_argv(bind: str) -> list[str]:
            return stack_argv(bind, args.server_model, workers, connections_per_worker, threads)

        with (
            service_process(env, "consumer", servers.log_dir / "serve.log") as (base, serve),
            stack_process(anchor_env, anchor_argv, servers.log_dir / "accept_stack.log") as (anchor_base, anchor),
        ):
            for run_number in range(args.runs):
                run = {}
                for connections in args.concurrency:
                    # An empty queue for each measurement, so no side pays for another's backlog.
                    empty_queue(sqs, queue_url)
                    run_wrk(base, connections, args.warmup, key, body_file)
                    if "task_body_bytes" not in parameters:
                        parameters["task_body_bytes"] = task_body_bytes(sqs, queue_url)
                    api = run_wrk_counting_cpu(serve.pid, base, connections, args.duration, key, body_file)
                    empty_queue(sqs, queue_url)
                    run_wrk(anchor_base, connections, args.warmup, anchor_key, body_file)
                    if "common_stack_task_body_bytes" not in parameters:
                        parameters["common_stack_task_body_bytes"] = task_body_bytes(sqs, queue_url)
                        print(
                            f"task bodies: API {parameters['task_body_bytes']} bytes, "
                            f"common stack {parameters['common_stack_task_body_bytes']} bytes",
                            file=sys.stderr,
                        )
                    stack = run_wrk_counting_cpu(anchor.pid, anchor_base, connections, args.duration, anchor_key, body_file)
                    empty_queue(sqs, queue_url)
                    bare = run_bare_loop(env, queue_url, connections, args.duration, 1, parameters["task_body_bytes"])
                    # Other work on the machine skews every figure: the 1-minute load average says how much there was.
                    run[str(connections)] = {
                        "api": api,
                        "common_stack": stack,
                        "bare_sqs": bare,
                        "load_average_1min": round(os.getloadavg()[0], 2),
                    }
                    print(
                        f"run {run_number + 1}/{args.runs} c={connections}: API {api['per_second']}/s p99 {api['p99_ms']} ms "
                        f"{api['server_cpu_ms_per_request']} ms CPU/req "
                        f"(non-202 {api['non_202']}); common stack {stack['per_second']}/s p99 {stack['p99_ms']} ms "
                        f"{stack['server_cpu_ms_per_request']} ms CPU/req (non-202 {stack['non_202']}); bare SQS {bare['per_second']}/s p99 {bare['p99_ms']} ms",
                        file=sys.stderr,
                    )
                results["runs"].append(run)
            empty_queue(sqs, queue_url)
            results["medians"] = medians(results["runs"], args.concurrency)
            peak = max(results["medians"], key=lambda row: row["api_per_second"])
            half_rate = peak["api_per_second"] / 2
            paced = []
            for _ in range(args.runs):
                run_wrk(base, peak["concurrency"], args.warmup, key, body_file, rate=half_rate)
                paced.append(run_wrk(base, peak["concurrency"], args.duration, key, body_file, rate=half_rate))
                empty_queue(sqs, queue_url)
                print(f"paced at {half_rate:.0f}/s: {paced[-1]['per_second']}/s p99 {paced[-1]['p99_ms']} ms", file=sys.stderr)
            results["half_peak"] = {
                "peak_per_second": peak["api_per_second"],
                "peak_concurrency": peak["concurrency"],
                "offered_per_second": round(half_rate, 1),
                "runs": paced,
                "median_per_second": median_of(paced, "per_second"),
                "median_p50_ms": median_of(paced, "p50_ms"),
                "median_p99_ms": median_of(paced, "p99_ms"),
            }
            memory = peak_memory(serve.pid)
            results["consumer_memory"] = {"processes": memory, "largest_peak_rss_mb": max(p["peak_rss_mb"] for p in memory)}
            memory = peak_memory(anchor.pid, STACK_ROLES)
            results["common_stack_memory"] = {
                "processes": memory,
                "largest_peak_rss_mb": max(p["peak_rss_mb"] for p in memory),
            }
        results["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
        results["wall_seconds"] = round(time.monotonic() - started)
    body_file.unlink()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.plot)
    for row in results["medians"]:
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"half_peak": {k: v for k, v in results["half_peak"].items() if k != "runs"}}), file=sys.stderr)
    print(json.dumps(results["consumer_memory"]), file=sys.stderr)
    print(json.dumps({"common_stack_memory": results["common_stack_memory"]}), file=sys.stderr)
    print(f"wrote {args.out} and {args.plot} (service logs in {servers.log_dir})", file=sys.stderr)


if __name__ == "__main__":
    main()
