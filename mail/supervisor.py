"""Runs the processes of a mode side by side and stops them together.

If any child exits, the others are stopped and the supervisor exits with its code, so a
container orchestrator sees the failure and restarts the task. SIGTERM/SIGINT are passed on and
the children get a grace period (Celery's warm shutdown lets in-flight sends finish).

A supervisor that is itself killed (SIGKILL, the OOM killer) cannot pass anything on, and the
children run in sessions of their own, so nothing else would stop them: each child asks Linux
for a SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, through ctypes, between fork and
exec), and so winds down as on a stop, never left orphaned. Chosen over a shared process group,
which only a signal someone sends to the group reaches: no one is left to send it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
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
    child.process = subprocess.Popen(child.argv, env=child.env, start_new_session=True, preexec_fn=_die_with(os.getpid()))
    if announce:
        announce(f"started {child.name} (pid {child.process.pid})")
    return child


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll url until it answers with any HTTP status, the process dies, or time runs out."""
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
