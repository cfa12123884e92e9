"""A local stand-in for SendGrid, Mailgun and (for its failures) Amazon SES, used by the local
run, the tests and the benchmarks.

It speaks SendGrid's v3 mail send (POST /v3/mail/send, Bearer auth, 202 + X-Message-Id) and
Mailgun's messages API (POST /v3/<domain>/messages, Basic auth api:<key>, multipart or urlencoded
form, 200 + {"id": ...}) and SES v2 SendEmail (POST /v2/email/outbound-emails, SigV4, 200 +
{"MessageId": ...}; errors named by x-amzn-ErrorType, as botocore reads them) closely enough that
the real provider code runs against it unchanged. It
keeps every request it receives (and writes accepted ones to an outbox folder as JSON), and it can
be told to misbehave per provider:

    PUT /_simulator/behaviour/sendgrid  {"status": 503, "times": 2}      # next 2 requests get 503
    PUT /_simulator/behaviour/sendgrid  {"status": 429, "retry_after": 7}
    PUT /_simulator/behaviour/mailgun   {"drop": true}                   # close without answering
    PUT /_simulator/behaviour/ses  {"status": 429, "error_code": "TooManyRequestsException", "times": 2}
    PUT /_simulator/behaviour/sendgrid  {"latency_ms": 250, "failure_rate": 0.3, "status": 500}
    PUT /_simulator/behaviour/mailgun   {"answer_delay_ms": 5000}     # accept, then answer late
    DELETE /_simulator/behaviour/sendgrid                                # behave again
    GET /_simulator/requests?provider=sendgrid&accepted=true   # each with its state: in_flight,
                                                               # answered, dropped or abandoned
    GET /_simulator/stats                # per provider: requests, accepted, TCP connections, first/last
    DELETE /_simulator/requests

It remembers what it accepted and lets it be read back as the providers do (devtools/simulator_logs.py):
SendGrid's Email Logs API (POST /v3/logs, GET /v3/logs/<sg_message_id>) and Mailgun's Events API
(GET /v3/<domain>/events), and it can post a signed webhook after each acceptance:

    PUT /_simulator/webhooks/sendgrid  {"url": "http://api/webhooks/sendgrid", "private_key_pem": "...", "delay_ms": 200}
    PUT /_simulator/webhooks/mailgun   {"url": "http://api/webhooks/mailgun", "signing_key": "..."}
    DELETE /_simulator/webhooks/sendgrid
    PUT /_simulator/logs  {"lag_ms": 600000}      # the log APIs show an acceptance only this long after it

Run it with `python -m devtools.simulator --port 8025 --outbox var/outbox`. With `--tls-cert
FILE` it speaks HTTPS, as the real APIs do, with a self-signed certificate for 127.0.0.1 and
localhost that it writes to FILE for clients to trust (REQUESTS_CA_BUNDLE=FILE): then a client
that opens a connection per request pays a TLS handshake for each, as it would in production.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import ipaddress
import itertools
import json
import logging
import random
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import simulator_logs as logs

log = logging.getLogger("devtools.simulator")

SENDGRID_PATH = re.compile(r"/v3/mail/send")
MAILGUN_PATH = re.compile(r"/v3/(?P<domain>[^/]+)/messages")
SES_PATH = re.compile(r"/v2/email/outbound-emails")
BEHAVIOUR_PATH = re.compile(r"/_simulator/behaviour/(?P<provider>sendgrid|mailgun|ses)")


@dataclass
class Behaviour:
    status: int | None = None  # answer with this status instead of succeeding
    times: int | None = None  # ... for this many requests (None: every request)
    drop: bool = False  # close the connection without answering instead
    failure_rate: float = 0.0  # with status/drop: fail this share of requests at random
    latency_ms: int = 0  # wait this long before answering (every request)
    # Take the mail (accepted, logged, its webhook posted), then wait this long before answering:
    # a client killed meanwhile leaves the provider with a mail its sender never heard it took.
    answer_delay_ms: int = 0
    retry_after: str | None = None  # Retry-After header sent with a failure
    error_code: str | None = None  # SES: the error's name (x-amzn-ErrorType) sent with a failure

    def should_fail(self) -> bool:
        if self.status is None and not self.drop:
            return False
        if self.failure_rate:
            return random.random() < self.failure_rate
        if self.times is None:
            return True
        if self.times > 0:
            self.times -= 1
            return True
        return False


class Simulator:
    """What the simulator has received and how it is told to behave; shared by handler threads."""

    def __init__(self, outbox: Path | None = None):
        self.outbox = outbox
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.behaviours = {"sendgrid": Behaviour(), "mailgun": Behaviour(), "ses": Behaviour()}
        self.sequence = itertools.count(1)
        self.webhooks: dict[str, dict] = {}  # provider -> where and how to post its signed events
        self.log_lag_seconds = 0.0
        if outbox:
            outbox.mkdir(parents=True, exist_ok=True)

    def decide_failure(self, provider: str) -> tuple[bool, Behaviour]:
        with self.lock:
            behaviour = self.behaviours[provider]
            return behaviour.should_fail(), behaviour

    def record(self, entry: dict) -> dict:
        """Keep a request from the moment it arrives, so a held one can be seen in flight."""
        with self.lock:
            entry["sequence"] = next(self.sequence)
            self.requests.append(entry)
        return entry

    def stats(self) -> dict:
        """Counts without the bodies, for a benchmark that polls while the load runs: requests,
        accepted ones, distinct TCP connections they came on, and when the first and last arrived."""
        with self.lock:
            found = list(self.requests)
        by_provider = {}
        for provider in self.behaviours:
            mine = [r for r in found if r["provider"] == provider]
            by_provider[provider] = {
                "requests": len(mine),
                "accepted": sum(1 for r in mine if r["accepted"]),
                "connections": len({r["connection"] for r in mine}),
                "first_received_at": min((r["received_at"] for r in mine), default=None),
                "last_received_at": max((r["received_at"] for r in mine), default=None),
            }
        return by_provider

    def accepted(self, provider: str) -> list[dict]:
        """What the provider's log shows now: its accepted requests, once the log has caught up."""
        now = time.time()
        with self.lock:
            return [r for r in self.requests if r["provider"] == provider and logs.visible(r, self.log_lag_seconds, now)]

    def finish(self, entry: dict, **outcome) -> None:
        with self.lock:
            entry.update(outcome)
            webhook = self.webhooks.get(entry["provider"]) if entry.get("accepted") else None
        if webhook:
            logs.post_webhook_later(entry["provider"], entry, webhook)
        if self.outbox and entry["accepted"]:
            name = f"{entry['sequence']:06d}-{entry['provider']}-{entry['provider_message_id'].strip('<>')}.json"
            (self.outbox / name).write_text(json.dumps(entry, indent=2, ensure_ascii=False))


def json_of(body: bytes) -> dict:
    """{"json": the body parsed} when the body is JSON (SendGrid's, SES's), else {}."""
    try:
        return {"json": json.loads(body)}
    except ValueError:
        return {}


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, list[str]], list[dict]]:
    """Mailgun's form fields (repeated ones as lists) and its file parts, from either encoding."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qs(body.decode("utf-8"), keep_blank_values=True), []
    if not content_type.startswith("multipart/form-data"):
        raise ValueError(f"unsupported content type {content_type!r}")
    document = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not document.is_multipart():
        raise ValueError("malformed multipart body")
    fields: dict[str, list[str]] = {}
    files: list[dict] = []
    for part in document.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files.append(
                {
                    "field": name,
                    "filename": filename,
                    "content_type": part.get_content_type(),
                    "size": len(payload),
                    "sha256": hashlib.sha256(payload).hexdigest(),
                    "content": base64.b64encode(payload).decode("ascii"),
                }
            )
        else:
            fields.setdefault(name, []).append(payload.decode(part.get_content_charset() or "utf-8"))
    return fields, files


class Handler(BaseHTTPRequestHandler):
    server: SimulatorServer
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs: connection reuse is measurable

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("%s %s", self.address_string(), format % args)

    # --- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, payload=None, headers: dict | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- routes -----------------------------------------------------------------------------
    def do_GET(self):  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/_simulator/health":
            return self._answer(200, {"ok": True})
        if url.path == "/_simulator/requests":
            query = parse_qs(url.query)
            with self.server.simulator.lock:
                found = list(self.server.simulator.requests)
            if "provider" in query:
                found = [r for r in found if r["provider"] == query["provider"][0]]
            if "accepted" in query:
                wanted = query["accepted"][0] == "true"
                found = [r for r in found if r["accepted"] is wanted]
            return self._answer(200, found)
        if url.path == "/_simulator/stats":
            return self._answer(200, self.server.simulator.stats())
        if match := logs.SENDGRID_LOG_PATH.fullmatch(url.path):
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self._answer(401, {"errors": [{"message": "authorization required"}]})
            found = [r for r in self.server.simulator.accepted("sendgrid") if r["provider_message_id"] == match["id"]]
            if not found:
                return self._answer(404, {"errors": [{"message": "message not found"}]})
            return self._answer(200, logs.sendgrid_detail(found[0]))
        if logs.MAILGUN_EVENTS_PATH.fullmatch(url.path):
            if not self.headers.get("Authorization", "").startswith("Basic "):
                return self._answer(401, {"message": "Invalid private key"})
            return self._answer(200, logs.mailgun_events(self.server.simulator.accepted("mailgun"), parse_qs(url.query)))
        return self._answer(404, {"message": "not found"})

    def do_DELETE(self):  # noqa: N802
        self._body()
        path = urlsplit(self.path).path
        simulator = self.server.simulator
        if path == "/_simulator/requests":
            with simulator.lock:
                simulator.requests.clear()
            return self._answer(204)
        if match := BEHAVIOUR_PATH.fullmatch(path):
            with simulator.lock:
                simulator.behaviours[match["provider"]] = Behaviour()
            return self._answer(204)
        if match := logs.WEBHOOKS_PATH.fullmatch(path):
            with simulator.lock:
                simulator.webhooks.pop(match["provider"], None)
            return self._answer(204)
        return self._answer(404, {"message": "not found"})

    def do_PUT(self):  # noqa: N802
        body = self._body()
        path = urlsplit(self.path).path
        simulator = self.server.simulator
        if match := logs.WEBHOOKS_PATH.fullmatch(path):
            config = json.loads(body or b"{}")
            if not isinstance(config, dict) or "url" not in config:
                return self._answer(400, {"message": "a webhook needs a url (and its provider's signing key)"})
            with simulator.lock:
                simulator.webhooks[match["provider"]] = config
            return self._answer(200, {"provider": match["provider"], "url": config["url"]})
        if path == logs.LOGS_PATH:
            with simulator.lock:
                simulator.log_lag_seconds = float(json.loads(body or b"{}").get("lag_ms", 0)) / 1000
            return self._answer(200, {"lag_ms": simulator.log_lag_seconds * 1000})
        match = BEHAVIOUR_PATH.fullmatch(path)
        if not match:
            return self._answer(404, {"message": "not found"})
        try:
            behaviour = Behaviour(**json.loads(body or b"{}"))
        except (TypeError, ValueError) as exc:
            return self._answer(400, {"message": str(exc)})
        with self.server.simulator.lock:
            self.server.simulator.behaviours[match["provider"]] = behaviour
        return self._answer(200, asdict(behaviour))

    def do_POST(self):  # noqa: N802
        body = self._body()
        path = urlsplit(self.path).path
        if SENDGRID_PATH.fullmatch(path):
            return self._provider_request("sendgrid", body, self._sendgrid)
        if match := MAILGUN_PATH.fullmatch(path):
            return self._provider_request("mailgun", body, lambda b: self._mailgun(match["domain"], b))
        if SES_PATH.fullmatch(path):
            return self._provider_request("ses", body, self._ses)
        if logs.SENDGRID_LOGS_PATH.fullmatch(path):
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self._answer(401, {"errors": [{"message": "authorization required"}]})
            try:
                search = json.loads(body or b"{}")
                found = logs.sendgrid_search(
                    self.server.simulator.accepted("sendgrid"), str(search.get("query", "")), int(search.get("limit", 10))
                )
            except (ValueError, TypeError, AttributeError) as exc:
                return self._answer(400, {"errors": [{"message": f"invalid query: {exc}"}]})
            return self._answer(200, {"messages": found})
        return self._answer(404, {"message": "not found"})

    def _client_gone(self) -> bool:
        """True when the client closed its connection (a killed worker) while we held the request."""
        try:
            # The TCP stream itself (an SSLSocket refuses flags): end of stream is all we look for.
            return socket.socket.recv(self.connection, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _provider_request(self, provider: str, body: bytes, handle) -> None:
        simulator = self.server.simulator
        fail, behaviour = simulator.decide_failure(provider)
        entry = simulator.record(
            {
                "provider": provider,
                "path": self.path,
                "received_at": time.time(),
                # The client's address and port name its TCP connection: distinct values count connections.
                "connection": "{}:{}".format(*self.client_address[:2]),
                "headers": {k: v for k, v in self.headers.items()},
                "state": "in_flight",
                "status": None,
                "accepted": False,
                "provider_message_id": "",
            }
        )
        if behaviour.latency_ms:
            time.sleep(behaviour.latency_ms / 1000)
            if self._client_gone():
                # Nobody is left to hear an answer: like a provider that never finished accepting.
                simulator.finish(entry, state="abandoned")
                return self._drop()
        if fail and behaviour.drop:
            simulator.finish(entry, state="dropped")
            return self._drop()
        if fail:
            # What a refused JSON request carried is kept too: a test compares a retry's bytes.
            simulator.finish(entry, state="answered", status=behaviour.status, **json_of(body))
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            if provider == "ses":
                headers["x-amzn-ErrorType"] = behaviour.error_code or "InternalFailure"
            return self._answer(behaviour.status, self._error_body(provider, behaviour.status), headers)
        status, payload, headers, details = handle(body)
        simulator.finish(entry, **details, state="answered", status=status, accepted=200 <= status < 300)
        if behaviour.answer_delay_ms:
            time.sleep(behaviour.answer_delay_ms / 1000)
        return self._answer(status, payload, headers)

    # SendGrid's error entries: "field" and "help" are left out when there is none. The live API
    # sends them as null, which its OpenAPI description does not allow, and the contract tests
    # check these answers against that description; the provider code reads neither.
    @staticmethod
    def _error_body(provider: str, status: int) -> dict:
        if provider == "sendgrid":
            return {"errors": [{"message": f"simulated failure {status}"}]}
        return {"message": f"simulated failure {status}"}

    # --- SendGrid ---------------------------------------------------------------------------
    def _sendgrid(self, body: bytes):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return 401, {"errors": [{"message": "authorization required"}]}, {}, {}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"errors": [{"message": "Bad Request"}]}, {}, {}
        problems = sendgrid_problems(payload)
        if problems:
            errors = [{"message": message, "field": field} if field else {"message": message} for field, message in problems]
            return 400, {"errors": errors}, {}, {"json": payload}
        message_id = uuid.uuid4().hex[:22]
        return 202, None, {"X-Message-Id": message_id}, {"json": payload, "provider_message_id": message_id}

    # --- SES v2 -----------------------------------------------------------------------------
    def _ses(self, body: bytes):
        if not self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
            return 403, {"message": "Missing Authentication Token"}, {"x-amzn-ErrorType": "AccessDeniedException"}, {}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"message": "Bad Request"}, {"x-amzn-ErrorType": "BadRequestException"}, {}
        message_id = f"{uuid.uuid4().hex}-{uuid.uuid4().hex[:12]}-000000"
        return 200, {"MessageId": message_id}, {}, {"json": payload, "provider_message_id": message_id}

    # --- Mailgun ----------------------------------------------------------------------------
    def _mailgun(self, domain: str, body: bytes):
        auth = self.headers.get("Authorization", "")
        try:
            user, _, key = base64.b64decode(auth.removeprefix("Basic "), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, key = "", ""
        if not auth.startswith("Basic ") or user != "api" or not key:
            return 401, {"message": "Invalid private key"}, {}, {}
        try:
            fields, files = parse_form(self.headers.get("Content-Type", ""), body)
        except ValueError as exc:
            return 400, {"message": str(exc)}, {}, {}
        missing = [name for name in ("from", "to", "subject") if not fields.get(name)]
        if missing:
            return 400, {"message": f"'{missing[0]}' parameter is missing"}, {}, {"form": fields, "files": files}
        if not (fields.get("text") or fields.get("html")):
            return 400, {"message": "Need at least one of 'text' or 'html' parameters specified"}, {}, {"form": fields}
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{uuid.uuid4().hex[:12]}@{domain}>"
        details = {"form": fields, "files": files, "domain": domain, "provider_message_id": message_id}
        return 200, {"id": message_id, "message": "Queued. Thank you."}, {}, details


def sendgrid_problems(payload) -> list[tuple[str | None, str]]:
    """The checks SendGrid itself makes that a malformed request would trip first."""
    if not isinstance(payload, dict):
        return [(None, "Bad Request")]
    problems = []
    personalizations = payload.get("personalizations")
    if not personalizations or not all(isinstance(p, dict) and p.get("to") for p in personalizations):
        problems.append(("personalizations", "The personalizations field is required and must have at least one to."))
    if not isinstance(payload.get("from"), dict) or not payload["from"].get("email"):
        problems.append(("from.email", "The from object must be provided for every email send."))
    if not payload.get("subject") and not all(p.get("subject") for p in personalizations or []):
        problems.append(("subject", "The subject is required."))
    if not payload.get("content") and not payload.get("template_id"):
        problems.append(("content", "Unless a valid template_id is provided, the content parameter is required."))
    return problems


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new connections (a client
    # that connects per message, at 32 at a time), and each dropped one costs a 1 s retransmit.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], simulator: Simulator):
        super().__init__(address, Handler)
        self.simulator = simulator


def self_signed_tls(cert_path: Path) -> ssl.SSLContext:
    """A server context with a new P-256 key and a certificate for 127.0.0.1 and localhost, the
    certificate written to cert_path (the key stays in memory, but ssl loads keys from files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provider simulator")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    with tempfile.NamedTemporaryFile(suffix=".pem") as key_file:
        key_file.write(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        key_file.flush()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_file.name)
    return context


class TlsSimulatorServer(SimulatorServer):
    """HTTPS: each connection's handshake runs in its handler thread, not in the accepting loop."""

    def __init__(self, address: tuple[str, int], simulator: Simulator, context: ssl.SSLContext):
        super().__init__(address, simulator)
        self.context = context

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that gave up or does not trust us: nothing to answer
        super().finish_request(request, client_address)


def client_settings(url: str) -> dict[str, str]:
    """The service's settings that send to this simulator instead of the real providers."""
    return {
        "SENDGRID_API_URL": url,
        "SENDGRID_API_KEY": "simulator",
        "MAILGUN_API_URL": url,
        "MAILGUN_API_KEY": "simulator",
        "MAILGUN_DOMAIN": "sandbox.local",
        # SES, when MAIL_PROVIDERS names it: SendEmail here, signed with the local run's dummy
        # AWS credentials (settings.py), so a local run needs no AWS account.
        "SES_ENDPOINT_URL": url,
    }


def write_settings_file(path: Path, url: str) -> None:
    """KEY=value lines that mailer_project/settings.py reads on a local run (the environment wins),
    so that `manage.py runserver` and a plain `celery worker` send here too."""
    lines = [f"# Written by the provider simulator ({url}); read by local runs. Delete it to send for real.\n"]
    lines += [f"{name}={value}\n" for name, value in client_settings(url).items()]
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text("".join(lines))
    partial.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--outbox", type=Path, default=None, help="folder for accepted messages as JSON")
    parser.add_argument("--tls-cert", type=Path, default=None, help="speak HTTPS; write the self-signed certificate here")
    parser.add_argument(
        "--settings-file", type=Path, default=None, help="write the service's settings that send here to this file"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
    if args.tls_cert:
        server = TlsSimulatorServer((args.host, args.port), Simulator(args.outbox), self_signed_tls(args.tls_cert))
    else:
        server = SimulatorServer((args.host, args.port), Simulator(args.outbox))
    scheme = "https" if args.tls_cert else "http"
    log.info("provider simulator listening on %s://%s:%d (outbox: %s)", scheme, args.host, server.server_port, args.outbox)
    if args.settings_file:
        reachable = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
        write_settings_file(args.settings_file, f"{scheme}://{reachable}:{server.server_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
