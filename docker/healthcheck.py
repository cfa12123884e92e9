"""The container's health check (Dockerfile HEALTHCHECK, the ECS task definitions): exit 0 when
the processes of MAILER_MODE are alive, 1 otherwise. Plain Python with no Django, so a check
every 15 s costs a few milliseconds, not a settings load.

consumer: the API answers /healthz (liveness only: a database or SQS outage is /readyz's business,
and restarting the container would not cure it).
processor: the Celery worker's event loop has touched WORKER_HEARTBEAT_FILE within
HEARTBEAT_MAX_AGE_SECONDS (mailer_project.celery.Heartbeat), so a wedged worker is restarted
even though its process still exists."""

import os
import sys
import time
import urllib.request

HEARTBEAT_MAX_AGE_SECONDS = 60


def api_alive() -> str | None:
    port = os.environ.get("BIND_ADDRESS", "127.0.0.1:8000").rsplit(":", 1)[-1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as response:
            return None if response.status == 200 else f"/healthz answered {response.status}"
    except OSError as exc:
        return f"/healthz: {exc}"


def worker_alive() -> str | None:
    path = os.environ.get("WORKER_HEARTBEAT_FILE", "")
    if not path:
        return "WORKER_HEARTBEAT_FILE is not set"
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError as exc:
        return f"no worker heartbeat: {exc}"
    return None if age <= HEARTBEAT_MAX_AGE_SECONDS else f"worker heartbeat is {age:.0f} s old"


def main() -> int:
    mode = os.environ.get("MAILER_MODE", "all")
    checks = {"consumer": [api_alive], "processor": [worker_alive], "all": [api_alive, worker_alive]}.get(mode)
    if checks is None:
        print(f"unknown MAILER_MODE {mode!r}", file=sys.stderr)
        return 1
    problems = [problem for check in checks if (problem := check())]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
