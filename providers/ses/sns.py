"""Amazon SNS's HTTP(S) notifications, verified: the message signature (SignatureVersion 1,
RSA with SHA-1; 2, RSA with SHA-256) over the string to sign the SNS documentation gives for
each message type, with the certificate fetched only from https://sns.<region>.amazonaws.com/
(the configured topic's region) and kept; the topic must be the configured one, the timestamp
fresh, and each message is accepted once (the caller stores its SingleUseToken).

A SubscriptionConfirmation for the configured topic is confirmed by visiting its SubscribeURL,
held to the same host rule. Nothing in a message is believed before its signature checks."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..events import SingleUseToken, WebhookMalformed, WebhookRefused

if TYPE_CHECKING:
    from cryptography import x509

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
# The string to sign: these keys, in this order, each as "Key\nValue\n" (Subject only when the
# notification has one). From the SNS documentation, "Verifying the signatures of Amazon SNS messages".
SIGNED_KEYS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    UNSUBSCRIBE_CONFIRMATION: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
TOPIC_ARN = re.compile(r"arn:(?P<partition>aws[a-z-]*):sns:(?P<region>[a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}")
MAX_CERTIFICATE_BYTES = 64 * 1024


@dataclass(frozen=True)
class SnsTrust:
    """What a notification is checked against: the topic SES publishes to and where SNS's
    certificates and confirmation links may be fetched from."""

    topic_arn: str
    # TESTS ONLY: also trust certificate and SubscribeURL links under this loopback URL prefix,
    # where a test serves its own certificate (settings refuse any other host for it).
    tests_only_insecure_url_prefix: str = ""
    timeout: tuple[float, float] = (5.0, 10.0)

    def region_host(self) -> str:
        match = TOPIC_ARN.fullmatch(self.topic_arn)
        if not match:
            raise ValueError(f"{self.topic_arn!r} is not an SNS topic ARN")
        suffix = ".amazonaws.com.cn" if match["partition"] == "aws-cn" else ".amazonaws.com"
        return f"sns.{match['region']}{suffix}"

    def trusted_url(self, url: str) -> bool:
        """An https URL on exactly sns.<the topic's region>.amazonaws.com, no port, no user."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if "@" in parts.netloc:
            return False
        if prefix := self.tests_only_insecure_url_prefix:
            # Compared part by part, never as text: "http://127.0.0.1:9000@evil.example/" starts
            # with "http://127.0.0.1:9000" and is evil.example's.
            trusted = urlsplit(prefix)
            if (parts.scheme, parts.hostname, port) == (trusted.scheme, trusted.hostname, trusted.port) and (
                parts.path.startswith(trusted.path or "/")
            ):
                return True
        return parts.scheme == "https" and parts.hostname == self.region_host() and port is None


def check_trust_settings(prefix: str) -> None:
    """SES_SNS_TESTS_ONLY_INSECURE_URL_PREFIX may only name this machine."""
    if prefix and urlsplit(prefix).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("only a loopback URL (a test's own server) may be trusted this way")


def verify(body: bytes, headers, trust: SnsTrust, max_age_seconds: int, now: float) -> tuple[dict, SingleUseToken]:
    """The verified SNS message and its single-use token, or WebhookRefused / WebhookMalformed."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WebhookMalformed("the body is not JSON (SNS posts a JSON document)") from exc
    if not isinstance(document, dict) or document.get("Type") not in SIGNED_KEYS:
        raise WebhookMalformed(f"an SNS message has a Type of {', '.join(SIGNED_KEYS)}")
    kind = document["Type"]
    announced = headers.get("x-amz-sns-message-type")
    if announced and announced != kind:
        raise WebhookMalformed("x-amz-sns-message-type and the message's Type differ")
    required = [k for k in (*SIGNED_KEYS[kind], "Signature", "SignatureVersion", "SigningCertURL") if k != "Subject"]
    missing = [k for k in required if not isinstance(document.get(k), str)]
    if missing or not isinstance(document.get("Subject") or "", str):
        raise WebhookRefused(f"not a signed SNS message (missing {', '.join(missing) or 'Subject'})")
    if document["TopicArn"] != trust.topic_arn:
        raise WebhookRefused("the message is not from the configured topic (SES_SNS_TOPIC_ARN)")
    signed_at = _check_age(document["Timestamp"], max_age_seconds, now)
    digest = HASHES.get(document["SignatureVersion"])
    if digest is None:
        raise WebhookRefused("SignatureVersion must be 1 or 2")
    url = document["SigningCertURL"]
    if not trust.trusted_url(url):
        raise WebhookRefused(f"the signing certificate is not on https://{trust.region_host()}/")
    try:
        signature = base64.b64decode(document["Signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRefused("the signature is not base64") from exc
    certificate = certificate_at(url, trust.timeout)
    if not certificate.not_valid_before_utc.timestamp() <= now <= certificate.not_valid_after_utc.timestamp():
        raise WebhookRefused("the signing certificate is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused("SNS signs with RSA; the certificate holds another kind of key")
    try:
        key.verify(signature, string_to_sign(document), padding.PKCS1v15(), digest())
    except InvalidSignature as exc:
        raise WebhookRefused("the signature does not match the message") from exc
    message_id = document["MessageId"]
    if not message_id or len(message_id) > 200:
        raise WebhookRefused("the MessageId is missing or too long")
    return document, SingleUseToken(token=f"sns:{message_id}", signed_at=signed_at)


def string_to_sign(document: dict) -> bytes:
    keys = SIGNED_KEYS[document["Type"]]
    # Subject is signed only when the notification has one (absent or null otherwise).
    return "".join(f"{key}\n{document[key]}\n" for key in keys if document.get(key) is not None).encode()


@functools.lru_cache(maxsize=16)
def certificate_at(url: str, timeout: tuple[float, float]) -> x509.Certificate:
    """The certificate at a trusted URL, fetched once per process (SNS signs with a few, for
    months). A failure is not kept: the next message fetches again."""
    try:
        with requests.get(url, timeout=timeout, allow_redirects=False, stream=True) as response:
            pem = response.raw.read(MAX_CERTIFICATE_BYTES + 1, decode_content=True)
    except (requests.RequestException, OSError) as exc:
        raise WebhookRefused(f"the signing certificate could not be fetched: {exc}") from exc
    if response.status_code != 200 or len(pem) > MAX_CERTIFICATE_BYTES:
        raise WebhookRefused(f"the signing certificate could not be fetched (HTTP {response.status_code})")
    # cryptography's X.509 module here, where a certificate is read, not with this module: the
    # settings load every provider (providers/registry.py), so each worker would hold it (about
    # 1 MB) for the API's SES webhook alone (docs/benchmarks.md, issue 21).
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise WebhookRefused("the signing certificate is not a PEM certificate") from exc


def confirm_subscription(document: dict, trust: SnsTrust) -> None:
    """Visit the SubscribeURL of a verified SubscriptionConfirmation for our topic."""
    url = document["SubscribeURL"]
    if not trust.trusted_url(url):
        raise WebhookRefused(f"the SubscribeURL is not on https://{trust.region_host()}/")
    try:
        response = requests.get(url, timeout=trust.timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise WebhookRefused(f"the subscription could not be confirmed: {exc}") from exc
    if response.status_code != 200:
        raise WebhookRefused(f"the subscription could not be confirmed (HTTP {response.status_code})")


def _check_age(timestamp: str, max_age_seconds: int, now: float) -> int:
    try:
        signed_at = datetime.fromisoformat(timestamp)
    except ValueError as exc:
        raise WebhookRefused("the Timestamp is not an ISO 8601 time") from exc
    if signed_at.tzinfo is None:
        raise WebhookRefused("the Timestamp has no time zone")
    if abs(now - signed_at.timestamp()) > max_age_seconds:
        raise WebhookRefused(f"the Timestamp is more than {max_age_seconds} s away from now")
    return int(signed_at.timestamp())
