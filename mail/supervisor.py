"""Runs the processes of a mode side by side and stops them together.

If any child exits, the others are stopped and the supervisor exits with its code, so a
container orchestrator sees the failure and restarts the task. SIGTERM/SIGINT are passed on and
the children get a grace period (Celery's warm shutdown lets in-flight sends finish).

A supervisor that is itself killed (SIGKILL, the OOM killer) cannot pass anything on, and the
children run in sessions of their own, so nothing else would stop them: each child asks Linux
for a SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, through ctypes, between fork and
exec), and so winds down as on a stop, never left orphaned. Chosen over a shared process group,
which only a signal someone sends to the group reaches: no one is left to send it.

It needs nothing of Django, and so loads none of it: `manage.py serve` reads the settings, builds
the children's command lines, then replaces itself (same pid) with `python -m mail.supervisor`,
the plan in its environment, which imports only the standard library and python-json-logger. A
supervisor that kept the Django process it started in would hold about 100 MB for nothing
(docs/benchmarks.md, issue 21)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("mail.serve")


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None  # the whole environment; None: the supervisor's own
    extra_env: dict[str, str] = field(default_factory=dict)  # set on top of it
    process: subprocess.Popen | None = None


def supervise(children: list[Child], grace_seconds: float = 60.0, announce=None) -> int:
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    # SIGHUP too: the children run in sessions of their own, so a closed terminal would leave
    # them running (and holding their ports) after the supervisor is gone.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        for child in children:
            if child.process is None:
                start(child, announce)
        exit_code = 0
        while not stopping:
            for child in children:
                code = child.process.poll()
                if code is not None:
                    if announce:
                        announce(f"{child.name} exited with {code}; stopping the others")
                    exit_code = code or 1
                    stopping = True
                    break
            else:
                time.sleep(0.2)
        stop_all(children, grace_seconds)
        return exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# linux/prctl.h
PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int):
    """What the child runs between fork and exec: SIGTERM when the parent dies, and at once if it
    already has (the parent can die before the request is made). Where prctl does not exist (not
    Linux) there is nothing to ask, and a child outlives a killed supervisor as before. The library
    is looked up here, in the parent: between fork and exec only the call itself is safe."""
    library = ctypes.util.find_library("c")
    prctl = getattr(ctypes.CDLL(library, use_errno=True), "prctl", None) if library else None

    def ask() -> None:
        if prctl is None:
            return
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return ask


def start(child: Child, announce=None) -> Child:
    # A session of its own: a terminal's Ctrl-C reaches the supervisor, which stops children in order.
    env = {**(child.env or os.environ), **child.extra_env} if child.extra_env else child.env
    child.process = subprocess.Popen(child.argv, env=env, start_new_session=True, preexec_fn=_die_with(os.getpid()))
    if announce:
        announce(f"started {child.name} (pid {child.process.pid})")
    return child


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll url until it answers with any HTTP status, the process dies, or time runs out."""
    # Imported here, for the callers that wait (runlocal, the tests, the benchmarks): the
    # supervisor process never does, and urllib.request brings ssl and http, 7 MB of its 22.
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode} before answering")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def stop_all(children: list[Child], grace_seconds: float) -> None:
    """Stop children one at a time, last started first: the API stops taking mail before the
    worker winds down, and the worker finishes before the local servers it talks to go away."""
    deadline = time.monotonic() + grace_seconds
    for child in reversed(children):
        if child.process is None or child.process.poll() is not None:
            continue
        os.killpg(child.process.pid, signal.SIGTERM)
        try:
            child.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


# --- the supervisor as a process of its own (`python -m mail.supervisor`) --------------------------

# The plan travels in this variable, which the supervisor removes before it starts anyone: on its
# command line it would make `ps` (and a check that reads command lines) show every child's.
PLAN_VARIABLE = "MAILER_SUPERVISOR_PLAN"


def supervisor_exec(children: list[Child], grace_seconds: float, log_level: str, log_format: str) -> tuple[list, dict]:
    """The command line and environment of a supervisor for these children. Only what differs
    from the supervisor's own environment is in the plan: the children inherit the rest."""
    plan = {
        "children": [{"name": child.name, "argv": child.argv, "extra_env": child.extra_env} for child in children],
        "grace_seconds": grace_seconds,
        "log_level": log_level,
        "log_format": log_format,
    }
    return python_argv("-m", "mail.supervisor"), {**os.environ, PLAN_VARIABLE: json.dumps(plan)}


def _log_to_stderr(level: str, style: str) -> None:
    """The supervisor's few lines, shaped like the app's (mailer_project/log_format.py: the same
    JSON fields, or one readable line), on stderr like the app's handler. They carry process names
    and exit codes, never a secret, so they need none of that module's redaction."""
    handler = logging.StreamHandler()
    if style == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s  %(message)s", datefmt="%H:%M:%S"))
    else:
        fields = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
        handler.setFormatter(
            JsonFormatter(fields, rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"})
        )
    logging.basicConfig(level=level, handlers=[handler])


def main() -> int:
    plan = json.loads(os.environ.pop(PLAN_VARIABLE))
    _log_to_stderr(plan["log_level"], plan["log_format"])
    children = [Child(spec["name"], spec["argv"], extra_env=spec["extra_env"]) for spec in plan["children"]]
    return supervise(children, grace_seconds=plan["grace_seconds"], announce=log.info)


if __name__ == "__main__":
    sys.exit(main())
