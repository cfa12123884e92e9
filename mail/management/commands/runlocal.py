"""`make run`: the whole service on one machine with no credentials; with --services (`make
services`), only what it needs around it, for `manage.py runserver` and a plain `celery worker`.

Starts the embedded SQS-compatible server (moto) and the provider simulator (which writes the
settings that send to it: mailer_project/settings.py LOCAL_PROVIDER_SETTINGS), migrates the
SQLite database, provisions the queues, makes a local admin user and API key, and runs the API
and a worker (MAILER_MODE=all). Ctrl-C stops everything."""

import os
import secrets
import sys
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from rest_framework_api_key.models import APIKey

from mail import keys
from mail.management.commands.serve import children_for_mode
from mail.supervisor import Child, python_argv, start, stop_all, supervise, wait_for_http

SIMULATOR_PORT = 8025
LOCAL_KEY_NAME = "local"


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument(
            "--services",
            action="store_true",
            help="start only the SQS/S3 server and the provider simulator (and set up): run the API and the worker yourself",
        )

    def handle(self, *args, services=False, **options):
        endpoint = urlsplit(settings.SQS_ENDPOINT_URL or "")
        if endpoint.hostname not in ("127.0.0.1", "localhost"):
            raise CommandError("runlocal starts its own SQS-compatible server; SQS_ENDPOINT_URL must be on 127.0.0.1")
        simulator_url = f"http://127.0.0.1:{SIMULATOR_PORT}"
        # fmt: off
        servers = [
            Child("sqs", python_argv("-m", "devtools.aws", "-H", "127.0.0.1", "-p", str(endpoint.port or 80))),
            Child(
                "simulator",
                python_argv(
                    "-m", "devtools.simulator", "--port", str(SIMULATOR_PORT), "--outbox", str(settings.VAR_DIR / "outbox"),
                    "--settings-file", str(settings.LOCAL_PROVIDER_SETTINGS),
                ),
            ),
        ]
        # fmt: on
        try:
            for child in servers:
                start(child, self.stderr.write)
            wait_for_http(settings.SQS_ENDPOINT_URL, 30, servers[0].process)
            wait_for_http(f"{simulator_url}/_simulator/health", 30, servers[1].process)
            call_command("migrate", verbosity=0)
            call_command("provision_queues")
            password = self._local_admin()
            key = self._local_api_key()
        except BaseException:
            stop_all(servers, grace_seconds=5)
            raise

        if services:
            self._announce_services(password, simulator_url)
            raise SystemExit(supervise(servers, grace_seconds=10, announce=self.stderr.write))
        # Log lines are for a person at a terminal: one readable line each, unless LOG_FORMAT says
        # otherwise. Celery warns that a worker run as root is not recommended; on a developer's
        # own machine with local-only credentials that says nothing to act on (the image runs as
        # a user of its own).
        env = {"LOG_FORMAT": "text", **os.environ, "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges"}
        app = children_for_mode("all")
        for child in app:
            child.env = env
        self._announce(key, password, simulator_url)
        raise SystemExit(supervise(servers + app, grace_seconds=30, announce=self.stderr.write))

    def _local_admin(self) -> str | None:
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            return None
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        (settings.VAR_DIR / "local-admin-password").write_text(password + "\n")
        return password

    def _local_api_key(self) -> str:
        path = settings.VAR_DIR / "local-api-key"
        if path.exists():
            key = path.read_text().strip()
            if APIKey.objects.is_valid(key):
                return key
        _, key = keys.create(LOCAL_KEY_NAME)
        path.write_text(key + "\n")
        return key

    def _announce_services(self, password: str | None, simulator_url: str) -> None:
        python = os.path.relpath(sys.executable)
        celery = os.path.relpath(os.path.join(os.path.dirname(sys.executable), "celery"))
        self.stdout.write(
            f"""
The SQS/S3 server ({settings.SQS_ENDPOINT_URL}) and the provider simulator ({simulator_url}) are up.
In two more terminals, from this folder:

  {python} manage.py runserver                       # the API, reloading as you edit
  {celery} -A mailer_project worker -l info   # the worker

API key in {settings.VAR_DIR / "local-api-key"}; admin user admin, password {password or f"in {settings.VAR_DIR / 'local-admin-password'}"}.
Ctrl-C here stops the servers.
"""
        )

    def _announce(self, key: str, password: str | None, simulator_url: str) -> None:
        base = f"http://{settings.BIND_ADDRESS}"
        password_note = password or f"(unchanged; see {settings.VAR_DIR / 'local-admin-password'})"
        self.stdout.write(
            f"""
Mailer is starting on {base}  (API key in {settings.VAR_DIR / "local-api-key"})

  Send a message:
    curl -i {base}/api/v1/messages -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
      -d '{{"from": "Me <me@example.com>", "to": "you@example.com", "subject": "Hello", "text": "It works."}}'
  Follow it:      curl {base}/api/v1/messages/<id> -H "Authorization: Bearer {key}"
  What providers received: {simulator_url}/_simulator/requests   (and {settings.VAR_DIR / "outbox"}/)
  Admin:          {base}/admin/   user admin, password {password_note}
"""
        )
