"""SES's events through SNS at /webhooks/ses, as SNS signs them: with an RSA key and a
self-made certificate this test serves on the loopback (trusted only through the explicit
SES_SNS_TESTS_ONLY_INSECURE_URL_PREFIX setting; the production host rule is checked on its own
below). Correctly signed notifications (SignatureVersion 1 and 2) move status and suppressions
like any provider's events; tampered, wrong-topic, wrong-certificate-host, wrong-certificate,
expired and replayed ones are refused with a 4xx, and only our topic's subscription is confirmed."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mail.models import MessageEvent, Suppression
from providers.ses.sns import SnsTrust, string_to_sign

from .support import sent_message

pytestmark = pytest.mark.django_db

URL = "/webhooks/ses"
TOPIC = "arn:aws:sns:us-east-1:123456789012:mailer-ses-events"


def certificate_for(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


class CertificateServer:
    """Serves the signing certificates at /<name>.pem and records every GET (SubscribeURL visits)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.visits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.visits.append(self.path)
                body = outer.files.get(self.path.split("?")[0], b"<ConfirmSubscriptionResponse/>")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class SnsSigner:
    def __init__(self, server: CertificateServer, name: str = "SimpleNotificationService-test"):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert_url = f"{server.url}/{name}-{uuid.uuid4().hex[:8]}.pem"
        server.files[self.cert_url.removeprefix(server.url)] = certificate_for(self.key)

    def sign(self, document: dict, version: str = "1") -> dict:
        document = {**document, "SignatureVersion": version, "SigningCertURL": document.get("SigningCertURL", self.cert_url)}
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(string_to_sign(document), padding.PKCS1v15(), digest)
        return {**document, "Signature": base64.b64encode(signature).decode()}


@pytest.fixture(scope="module")
def cert_server():
    server = CertificateServer()
    yield server
    server.server.shutdown()


@pytest.fixture
def signer(cert_server, settings):
    settings.SES_SNS_TOPIC_ARN = TOPIC
    settings.SES_SNS_TESTS_ONLY_INSECURE_URL_PREFIX = cert_server.url + "/"
    return SnsSigner(cert_server)


@pytest.fixture
def message(api_key):
    return sent_message(api_key[0], provider="ses")


def ses_event(message_id, event_type: str, **section) -> dict:
    record = {
        "eventType": event_type,
        "mail": {
            "timestamp": "2026-12-02T18:00:00.000Z",
            "messageId": "0100018c-ses-id",
            "source": "shop@example.com",
            "destination": ["ann@example.com"],
            "tags": {"mailer_message_id": [str(message_id)], "ses:configuration-set": ["mailer-events"]},
        },
    }
    if section:
        record[event_type[0].lower() + event_type[1:]] = {"timestamp": "2026-12-02T18:00:05.000Z", **section}
    return record


def notification(record: dict, **changes) -> dict:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(record),
        "Timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **changes,
    }


def post(client, document: dict):
    return client.post(
        URL,
        data=json.dumps(document),
        content_type="text/plain; charset=UTF-8",
        headers={"x-amz-sns-message-type": document.get("Type", "")},
    )


def status_of(message) -> str:
    message.refresh_from_db()
    return message.status


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_delivery_is_recorded(client, signer, message, version):
    record = ses_event(message.id, "Delivery", recipients=["ann@example.com"], smtpResponse="250 2.0.0 OK")
    answer = post(client, signer.sign(notification(record), version))
    assert answer.status_code == 200, answer.content
    assert answer.json()["recorded"] == 1 and status_of(message) == "delivered"
    event = MessageEvent.objects.get(message=message, type="delivered")
    assert event.provider == "ses" and "250 2.0.0 OK" in event.detail


@pytest.mark.parametrize(
    ("record", "status", "event_type", "suppressed"),
    [
        (("Bounce", {"bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [{"emailAddress": "Ann@example.com", "diagnosticCode": "550 no such user"}]}), "bounced", "bounced", "hard_bounce"),
        (("Bounce", {"bounceType": "Transient", "bounceSubType": "MailboxFull", "bouncedRecipients": [{"emailAddress": "ann@example.com"}]}), "bounced", "bounced", None),
        (("Bounce", {"bounceType": "Permanent", "bounceSubType": "Suppressed", "bouncedRecipients": [{"emailAddress": "ann@example.com"}]}), "dropped", "dropped", None),
        (("Complaint", {"complainedRecipients": [{"emailAddress": "ann@example.com"}], "complaintFeedbackType": "abuse"}), "complained", "complained", "complaint"),
        (("Reject", {"reason": "Bad content"}), "dropped", "dropped", None),
        (("DeliveryDelay", {"delayType": "MailboxFull", "delayedRecipients": [{"emailAddress": "ann@example.com"}]}), "sent", "deferred", None),
        (("Open", {"ipAddress": "192.0.2.1"}), "sent", "opened", None),
        (("Click", {"link": "https://example.com/x"}), "sent", "clicked", None),
        (("Send", {}), "sent", "processed", None),
    ],
    ids=["permanent-bounce", "transient-bounce", "suppressed-bounce", "complaint", "reject", "delay", "open", "click", "send"],
)  # fmt: skip
def test_ses_events_feed_status_and_suppressions(client, signer, message, record, status, event_type, suppressed):
    name, section = record
    answer = post(client, signer.sign(notification(ses_event(message.id, name, **section))))
    assert answer.status_code == 200 and answer.json()["recorded"] == 1, answer.content
    assert status_of(message) == status
    assert MessageEvent.objects.filter(message=message, type=event_type, provider="ses").count() == 1
    rows = list(Suppression.objects.values_list("address", "reason"))
    assert rows == ([("ann@example.com", suppressed)] if suppressed else [])


def test_refused_notifications(client, signer, message, cert_server):
    record = ses_event(message.id, "Delivery", recipients=["ann@example.com"])
    good = signer.sign(notification(record))

    tampered = {**good, "Message": good["Message"].replace("Delivery", "Bounce")}
    assert post(client, tampered).status_code == 403

    other_topic = signer.sign(notification(record, TopicArn="arn:aws:sns:us-east-1:123456789012:someone-else"))
    answer = post(client, other_topic)
    assert answer.status_code == 403 and "configured topic" in answer.json()["error"]["message"]

    for url in (
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        f"{cert_server.url.replace('127.0.0.1', 'localhost')}/cert.pem",
    ):
        answer = post(client, signer.sign(notification(record, SigningCertURL=url)))
        assert answer.status_code == 403 and "signing certificate is not on" in answer.json()["error"]["message"], url

    stranger = SnsSigner(cert_server)  # a valid certificate, but not the one that signed it
    wrong_certificate = {**signer.sign(notification(record)), "SigningCertURL": stranger.cert_url}
    assert post(client, wrong_certificate).status_code == 403

    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    answer = post(client, signer.sign(notification(record, Timestamp=old)))
    assert answer.status_code == 403 and "away from now" in answer.json()["error"]["message"]

    assert post(client, {**good, "SignatureVersion": "3"}).status_code == 403
    assert status_of(message) == "sent" and not MessageEvent.objects.filter(message=message, provider="ses").exists()

    assert post(client, good).status_code == 200
    replayed = post(client, good)
    assert replayed.status_code == 403 and replayed.json()["error"]["type"] == "replayed_webhook"
    assert MessageEvent.objects.filter(message=message, provider="ses").count() == 1


def test_malformed_and_unconfigured(client, signer, settings):
    # Without SNS's message-type header nothing is read; with it, a body that is not JSON is malformed.
    assert client.post(URL, data=b"not json", content_type="text/plain").status_code == 403
    assert (
        client.post(
            URL, data=b"not json", content_type="text/plain", headers={"x-amz-sns-message-type": "Notification"}
        ).status_code
        == 400
    )
    assert post(client, {"Type": "Surprise"}).status_code == 400
    assert post(client, {"Type": "Notification", "TopicArn": TOPIC}).status_code == 403  # unsigned
    settings.SES_SNS_TOPIC_ARN = ""
    assert post(client, signer.sign(notification({}))).status_code == 503


def test_only_our_topic_subscription_is_confirmed(client, signer, cert_server):
    def confirmation(topic: str, token: str) -> dict:
        return signer.sign(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": token,
                "TopicArn": topic,
                "Message": "You have chosen to subscribe to the topic.",
                "SubscribeURL": f"{cert_server.url}/?Action=ConfirmSubscription&Token={token}",
                "Timestamp": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
            },
            version="2",
        )

    assert post(client, confirmation("arn:aws:sns:us-east-1:123456789012:not-ours", "t-1")).status_code == 403
    assert not any("Token=t-1" in visit for visit in cert_server.visits)
    answer = post(client, confirmation(TOPIC, "t-2"))
    assert answer.status_code == 200 and answer.json()["received"] == 0
    assert any("Token=t-2" in visit for visit in cert_server.visits)

    far = signer.sign({**confirmation(TOPIC, "t-3"), "SubscribeURL": "https://attacker.example/?Token=t-3"}, version="2")
    assert post(client, far).status_code == 403


def test_the_tests_only_prefix_is_compared_part_by_part():
    trust = SnsTrust(topic_arn=TOPIC, tests_only_insecure_url_prefix="http://127.0.0.1:9000/certs/")
    assert trust.trusted_url("http://127.0.0.1:9000/certs/cert.pem")
    for url in (
        "http://127.0.0.1:9000@evil.example/certs/cert.pem",  # starts with the prefix's text, is evil.example's
        "http://127.0.0.1:9001/certs/cert.pem",
        "http://127.0.0.1:9000/elsewhere/cert.pem",
        "https://127.0.0.1:9000/certs/cert.pem",
    ):
        assert not trust.trusted_url(url), url


def test_the_production_certificate_rule():
    trust = SnsTrust(topic_arn=TOPIC)
    assert trust.trusted_url("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa.pem")
    for url in (
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-9c6465fa.pem",  # not the topic's region
        "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
        "https://user@sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://127.0.0.1/cert.pem",
    ):
        assert not trust.trusted_url(url), url
