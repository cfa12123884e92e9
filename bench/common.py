"""What the benchmark scripts share: local servers on loopback (an SQS/S3-compatible server and the
provider simulator), the service's own processes, and the statistics they report."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.net import free_port  # noqa: E402
from mail.supervisor import Child, python_argv, stop_all, wait_for_http  # noqa: E402

FAUXQS_VERSION = "1.9.2"
NODE_DIR = ROOT / "bench" / "node"
DEFAULT_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mailerbench")


@dataclass
class Servers:
    env: dict  # the environment for the service's processes and manage.py
    simulator_url: str
    sqs_server: str  # which SQS-compatible server, for the record
    log_dir: Path
    verify: str | bool = True  # for requests to the simulator: its certificate, when it speaks HTTPS


def sqs_server_argv(kind: str, port: int) -> tuple[list[str], dict]:
    """moto's server, or fauxqs (moto itself is the bottleneck of a throughput figure;
    fauxqs is several times faster). fauxqs comes from the npm registry into bench/node."""
    if kind == "moto":
        return python_argv("-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)), {}
    if not (NODE_DIR / "node_modules" / "fauxqs").exists():
        subprocess.run(
            ["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", f"fauxqs@{FAUXQS_VERSION}"], check=True
        )
    return ["node", str(ROOT / "bench" / "fauxqs.mjs")], {"FAUXQS_PORT": str(port)}


def ensure_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


@contextlib.contextmanager
def local_servers(sqs_kind: str, database_url: str, provider_tls: bool = False):
    """The SQS/S3 server and the simulator, running; the database migrated. With provider_tls the
    simulator speaks HTTPS as the real providers do, and the service's processes trust its
    certificate (REQUESTS_CA_BUNDLE, which requests reads from the environment)."""
    ensure_database(database_url)
    log_dir = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    sqs_port, simulator_port = free_port(), free_port()
    certificate = log_dir / "simulator-cert.pem"
    sqs_url = f"http://127.0.0.1:{sqs_port}"
    simulator_url = f"{'https' if provider_tls else 'http'}://127.0.0.1:{simulator_port}"
    sqs_argv, sqs_env = sqs_server_argv(sqs_kind, sqs_port)
    tls_argv = ["--tls-cert", str(certificate)] if provider_tls else []
    servers = [
        Child("sqs", sqs_argv, {**os.environ, **sqs_env}),
        Child("simulator", python_argv("-m", "devtools.simulator", "--port", str(simulator_port), *tls_argv)),
    ]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SQS_ENDPOINT_URL": sqs_url,
        "S3_ENDPOINT_URL": sqs_url,
        "S3_BUCKET": "mailer-bench",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "SENDGRID_API_URL": simulator_url,
        "SENDGRID_API_KEY": "bench",
        "MAILGUN_API_URL": simulator_url,
        "MAILGUN_API_KEY": "bench",
        "MAILGUN_DOMAIN": "bench.example.com",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **({"REQUESTS_CA_BUNDLE": str(certificate)} if provider_tls else {}),
    }
    try:
        for child in servers:
            with open(log_dir / f"{child.name}.log", "wb") as log:
                child.process = subprocess.Popen(
                    child.argv, cwd=ROOT, env=child.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        wait_for_http(sqs_url, 60, servers[0].process)
        wait_for_simulator(simulator_url, certificate if provider_tls else True, servers[1].process)
        manage(env, "migrate", "--verbosity", "0")
        label = {"moto": "moto (moto[server]) on loopback", "fauxqs": f"fauxqs {FAUXQS_VERSION} on loopback"}[sqs_kind]
        yield Servers(
            env=env, simulator_url=simulator_url, sqs_server=label, log_dir=log_dir, verify=env.get("REQUESTS_CA_BUNDLE", True)
        )
    finally:
        stop_all(servers, grace_seconds=10)


def wait_for_simulator(url: str, verify, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(f"{url}/_simulator/health", timeout=1, verify=verify).raise_for_status()
            return
        except (requests.RequestException, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the provider simulator at {url} did not start") from None
            time.sleep(0.1)


@contextlib.contextmanager
def service(env: dict, mode: str, log_path: Path):
    """`manage.py serve` in this mode on a free port; yields the API's base URL."""
    with service_process(env, mode, log_path) as (base, _):
        yield base


@contextlib.contextmanager
def service_process(env: dict, mode: str, log_path: Path):
    """As service(), yielding (the API's base URL, the `manage.py serve` process) for a script
    that also watches the process tree (its memory, say)."""
    port = free_port()
    env = {**env, "MAILER_MODE": mode, "BIND_ADDRESS": f"127.0.0.1:{port}"}
    with http_process([sys.executable, "manage.py", "serve"], env, log_path, port, "/healthz") as started:
        yield started


@contextlib.contextmanager
def http_process(argv: list[str], env: dict, log_path: Path, port: int, ready_path: str):
    """A server started from the repository with its output in log_path, in a session of its own;
    yields (its base URL on port, the process) once ready_path answers, and stops it after."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}{ready_path}", 60, process)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=90)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def median_of(points: list[dict], field: str, digits: int = 2):
    """The median of one field over several runs' results, those without it left out."""
    values = [point[field] for point in points if point.get(field) is not None]
    return round(statistics.median(values), digits) if values else None


def summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_s": round(statistics.median(values), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "max_s": round(max(values), 3),
    }


# --- processes and their memory --------------------------------------------------------------


def process_tree(pid: int, depth: int = 0) -> list[tuple[int, int]]:
    """(pid, depth) of the process and all its descendants, from /proc's per-thread child lists."""
    found = [(pid, depth)]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = task.read_text().split()
        except OSError:  # the thread or process has just ended
            continue
        for child in children:
            found += process_tree(int(child), depth + 1)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) one process has used so far, with that of its children that have
    ended and been waited for (a replaced pool child), from /proc/<pid>/stat; 0 once it is gone.
    A live child's time is its own, not its parent's: read it from the child while it runs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:  # ended meanwhile
        return 0.0
    # utime, stime, cutime, cstime: fields 14 to 17 of stat, counted after the command's ")".
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time the process and its descendants have used so far: what a server spent, whatever
    else the machine was doing meanwhile. Read before the tree is stopped: the times of processes
    that exit with it are lost."""
    # process_tree lists a parent before its children, so a child reaped between the two reads is
    # missed once rather than counted twice (in its own stat and in its parent's cutime).
    return sum(cpu_seconds(member) for member, _ in process_tree(pid))


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS now, VmHWM its peak); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120].strip()
    except OSError:
        return ""


def serve_role(pid: int, depth: int) -> str:
    """What a process of a `manage.py serve` tree is (mail/management/commands/serve.py starts
    them), from its command line and environment: the two Celery workers have the same command
    line, and only the callbacks' one has WORKER_CONSUMES=callbacks."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone
        return ""
    words = [word.decode(errors="replace") for word in argv if word]
    if depth == 0:
        return "supervisor (serve)"
    if "celery" in words or "mailer_project.celery_worker" in words:  # Celery's command line, or serve's worker
        if depth > 1:
            return "pool child"  # of a prefork worker
        return "callbacks worker" if b"WORKER_CONSUMES=callbacks" in environment else "mail worker"
    if "jobs" in words:
        return "jobs (drain_dlq, housekeeping)"
    if "gunicorn" in words:
        return "gunicorn master" if depth == 1 else "API worker"
    return " ".join(words)[:80]


class MemoryWatch:
    """Sampled while one or more process trees work (several workers side by side): each
    process's peak RSS (VmHWM, kept by the kernel, so a peak between samples is not missed), the
    peak of each tree's summed current RSS (a prefork pool's parent and children together), and
    the peak of all the trees' sum. With role, each process is named by role(pid, depth) rather
    than by its command line."""

    def __init__(self, *root_pids: int, role=None):
        self.root_pids = root_pids
        self.role = role
        self.peaks: dict[int, tuple[int, str, int]] = {}  # pid: (its tree's index, name, peak KiB)
        self.peak_tree_kib = [0] * len(root_pids)
        self.peak_total_kib = 0

    def sample(self) -> None:
        totals = []
        for tree, root in enumerate(self.root_pids):
            total = 0
            for pid, depth in process_tree(root):
                total += status_kib(pid, "VmRSS")
                _, name, high = self.peaks.get(pid, (tree, "", 0))
                # Named at every sample: read between fork and exec, a child is still its parent.
                name = (self.role(pid, depth) if self.role else command_line(pid)) or name
                self.peaks[pid] = (tree, name, max(high, status_kib(pid, "VmHWM")))
            totals.append(total)
        self.peak_tree_kib = [max(peak, total) for peak, total in zip(self.peak_tree_kib, totals, strict=True)]
        self.peak_total_kib = max(self.peak_total_kib, sum(totals))

    def report(self) -> dict:
        processes = sorted((p for p in self.peaks.values() if p[2]), key=lambda p: -p[2])
        key = "role" if self.role else "command"
        return {
            "largest_process_mb": round(processes[0][2] / 1024, 1) if processes else None,
            # All the trees together, and each tree alone (in the order of root_pids).
            "tree_total_mb": round(self.peak_total_kib / 1024, 1),
            "each_tree_total_mb": [round(kib / 1024, 1) for kib in self.peak_tree_kib],
            "processes": [{"tree": tree, key: name, "peak_rss_mb": round(kib / 1024, 1)} for tree, name, kib in processes],
        }
