"""Production settings, checked the way Django checks them."""

import subprocess
import sys


def run(*argv, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *argv], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True
    )


PRODUCTION = {
    "HTTPS": "true",
    "SECRET_KEY": "x7$k2-production-secret-that-is-long-and-random-0a9s8d7f6g5h4j3k2l1",
    "ALLOWED_HOSTS": "mail.example.com",
    "DATABASE_URL": "postgres://mailer@db.example.com/mailer",
    "SQS_ENDPOINT_URL": "",
}


def test_check_deploy_passes_with_the_production_environment():
    done = run("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr


def test_https_without_a_real_secret_key_refuses_to_start():
    done = run("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert done.returncode != 0 and "set SECRET_KEY" in done.stderr


def test_unknown_provider_names_refuse_to_start():
    done = run("check", MAIL_PROVIDERS="sendgrid,postmark")
    assert done.returncode != 0 and "unknown: ['postmark']" in done.stderr


def max_request_bytes(**env) -> int:
    code = "from django.conf import settings; print(settings.MAX_REQUEST_BYTES)"
    done = run("shell", "-c", code, **{**PRODUCTION, "HTTPS": "false", **env})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])  # after the shell's note on its automatic imports


def test_the_request_body_cap_is_4_mb_without_large_message_storage_and_36_mb_with_it():
    # Without S3 no task over 1 MiB can be queued, and a body much over 4 MB cannot make one.
    assert max_request_bytes() == 4_000_000
    assert max_request_bytes(S3_BUCKET="mailer-large-messages") == 36_000_000


def test_a_sendgrid_webhook_key_that_is_not_a_p256_public_key_refuses_to_start():
    done = run("check", SENDGRID_WEBHOOK_PUBLIC_KEY="not-a-key")
    assert done.returncode != 0 and "SENDGRID_WEBHOOK_PUBLIC_KEY: not a base64 DER public key" in done.stderr
    # An RSA key: valid DER, the wrong kind.
    rsa = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL1T9m5ZyrzWmPOTq7dbyIKA9u4ZtJ6D9ESOGsF7NRVHngz6gqkwG5P/OFt+eyGkcsYvFOvA3xEGKwlh8tyvr+cCAwEAAQ=="
    done = run("check", SENDGRID_WEBHOOK_PUBLIC_KEY=rsa)
    assert done.returncode != 0 and "P-256" in done.stderr


def test_a_fifo_queue_refuses_to_start():
    # Retries and scheduled sends wait as per-message DelaySeconds, which FIFO queues refuse.
    done = run("check", SQS_QUEUE_NAME="mail.fifo")
    assert done.returncode != 0 and "FIFO queue takes no per-message delay" in done.stderr
