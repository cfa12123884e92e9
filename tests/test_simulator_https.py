"""The provider simulator over HTTPS (`--tls-cert`), as the benchmarks run it: the real provider
code trusts its certificate through REQUESTS_CA_BUNDLE, keeps one connection for many sends, and
the stats endpoint counts requests and TCP connections."""

import subprocess
import sys

import pytest
import requests

from providers.base import TransientError
from providers.http import Timeouts
from providers.sendgrid.sending import SendGridProvider

from .embedded_services import free_port
from .support import wait_until
from .test_sendgrid import minimal


@pytest.fixture
def https_simulator(tmp_path):
    port, certificate = free_port(), tmp_path / "simulator.pem"
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.simulator", "--port", str(port), "--tls-cert", str(certificate)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return certificate.exists() and requests.get(f"{url}/_simulator/health", verify=certificate, timeout=1).ok
        except requests.RequestException:
            return False

    wait_until(answers, timeout=20, what="the HTTPS simulator to answer")
    yield url, certificate
    process.terminate()
    process.wait(timeout=10)


def test_sends_over_https_reuse_one_connection(https_simulator, monkeypatch):
    url, certificate = https_simulator
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
    sendgrid = SendGridProvider("key", url, Timeouts(connect=2, read=5))

    results = [sendgrid.send(minimal()) for _ in range(4)]

    assert all(result.status_code == 202 and result.provider_message_id for result in results)
    stats = requests.get(f"{url}/_simulator/stats", verify=certificate, timeout=5).json()["sendgrid"]
    assert (stats["requests"], stats["accepted"], stats["connections"]) == (4, 4, 1)


def test_an_untrusted_certificate_is_refused(https_simulator):
    url, _ = https_simulator
    sendgrid = SendGridProvider("key", url, Timeouts(connect=2, read=5))
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
        sendgrid.send(minimal())
