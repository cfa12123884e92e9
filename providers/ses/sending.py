"""Amazon SES v2 SendEmail through boto3, with the task role's credentials (boto3's own chain: no
key of ours). The request is built from the neutral message (content.py for the mail itself),
checked against SES's limits before it is made, and its failures classified in errors.py."""

from __future__ import annotations

import re

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..base import MESSAGE_ID_KEY, MessageRejected, OutboundMessage, SendResult
from ..spec import Limits
from . import content, errors

NAME = errors.NAME
# SES takes at most 50 recipients (to, cc and bcc together) in one SendEmail call. A larger
# message is refused here, before the request, as a MessageRejected: the next provider takes it
# at once. It is not split into several calls: one message must be one call that SES accepts or
# refuses as a whole. SES counts its sending rate per recipient, so a split message is likely to
# be throttled half-way, and the retry (or the failover) would then send the first part again,
# to recipients who already have it. Nor is 50 declared as LIMITS.recipients: the API takes only
# what every registered provider takes (Limits.strictest), so that would cut every client's limit
# from 1,000 to 50 whether SES is used or not (docs/providers.md, "Amazon SES").
MAX_RECIPIENTS_PER_CALL = 50
# SES v2: a message of at most 40 MB, counted after its MIME encoding.
MAX_RAW_BYTES = 40 * 1024 * 1024
# EmailTags: names and values of ASCII letters, digits, "_" and "-", at most 256 characters.
TAG_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
TAG_VALUE = re.compile(r"[A-Za-z0-9_-]{0,256}")
# A client's tag travels as the EmailTags entry "tag-<tag>" (metadata keys are the other names).
TAG_PREFIX = "tag-"
# What the API may accept for every provider: the per-call rules above are SES's alone and are
# checked before each request instead (see MAX_RECIPIENTS_PER_CALL). X-SES-* headers are
# instructions to SES itself (X-SES-CONFIGURATION-SET, X-SES-MESSAGE-TAGS, X-SES-FROM-ARN, ...):
# a client's value would change how SES treats the mail, so the API refuses them.
# Our own X-Mailer-Message-Id (content.py) is not the client's to set either.
LIMITS = Limits(
    recipients=1000,
    tags=50,
    tag_chars=256 - len(TAG_PREFIX),
    reserved_header_prefixes=("x-ses-", content.MESSAGE_ID_HEADER.lower()),
)


def check_limits(message: OutboundMessage) -> None:
    """What the API refuses for SES's sake: nothing that another provider takes (see LIMITS)."""
    if len(message.tags) > LIMITS.tags:
        raise MessageRejected(NAME, f"{len(message.tags)} tags; SES takes at most {LIMITS.tags} per message", field="tags")


def email_tags(message: OutboundMessage) -> list[dict]:
    """Our id, the client's metadata and its tags as SES EmailTags: SES echoes them in every
    event of the message (mail.tags), as SendGrid's custom_args and Mailgun's v: variables."""
    tags = [{"Name": MESSAGE_ID_KEY, "Value": message.message_id}]
    tags.extend({"Name": key, "Value": value} for key, value in message.metadata.items())
    tags.extend({"Name": TAG_PREFIX + tag, "Value": "true"} for tag in message.tags)
    return tags


def check_request(message: OutboundMessage, tags: list[dict]) -> None:
    """Refuse, without a request, what SES would refuse in one call: the next provider may take it."""
    recipients = len(message.to) + len(message.cc) + len(message.bcc)
    if recipients > MAX_RECIPIENTS_PER_CALL:
        raise MessageRejected(
            NAME, f"{recipients} recipients; SES takes at most {MAX_RECIPIENTS_PER_CALL} per message", field="to"
        )
    for field, addresses in (("from", (message.sender,)), ("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
        for address in addresses:
            if not address.email.isascii():
                raise MessageRejected(
                    NAME, f"{address.email}: SES takes ASCII addresses only (IDN domains as punycode)", field=field
                )
    names = set()
    for tag in tags:
        field = "tags" if tag["Name"].startswith(TAG_PREFIX) else "metadata"
        if not TAG_NAME.fullmatch(tag["Name"]) or not TAG_VALUE.fullmatch(tag["Value"]):
            raise MessageRejected(
                NAME,
                f"{tag['Name'][:60]!r}={tag['Value'][:60]!r}: SES tags take ASCII letters, digits, '_' and '-' only, up to 256",
                field=field,
            )
        if tag["Name"] in names:
            raise MessageRejected(NAME, f"the tag name {tag['Name'][:60]!r} is used twice", field=field)
        names.add(tag["Name"])


class SesProvider:
    name = NAME

    def __init__(self, client, configuration_set: str = "", from_arn: str = "", paused_circuit_seconds: float = 300.0):
        self.client = client
        self.configuration_set = configuration_set
        self.from_arn = from_arn
        self.paused_circuit_seconds = paused_circuit_seconds

    @classmethod
    def connect(
        cls,
        *,
        region: str,
        endpoint_url: str = "",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout: float,
        read_timeout: float,
        connections: int,
        **options,
    ) -> SesProvider:
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # No retries in botocore: retrying is the delivery pipeline's decision, with its
            # backoff held by SQS (as providers/http.py mounts no retries for the HTTP providers).
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=connections,
        )
        client = boto3.session.Session().client(
            "sesv2",
            region_name=region,
            endpoint_url=endpoint_url or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=config,
        )
        return cls(client, **options)

    def send(self, message: OutboundMessage) -> SendResult:
        request = self.build_request(message)
        try:
            answer = self.client.send_email(**request)
        except (ClientError, BotoCoreError) as exc:
            raise errors.classify(exc, self.paused_circuit_seconds) from exc
        # SES has the mail now: nothing here may raise, or a redelivery would send it again.
        message_id = answer.get("MessageId", "") if isinstance(answer, dict) else ""
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 200) if isinstance(answer, dict) else 200
        return SendResult(self.name, str(message_id), status)

    def build_request(self, message: OutboundMessage) -> dict:
        """The SendEmail parameters (tests/test_ses_contracts.py holds them to botocore's model)."""
        check_limits(message)
        tags = email_tags(message)
        check_request(message, tags)
        address = content.destination_address
        request = {
            "FromEmailAddress": address(message.sender),
            "Destination": {
                key: [address(a) for a in addresses]
                for key, addresses in (("ToAddresses", message.to), ("CcAddresses", message.cc), ("BccAddresses", message.bcc))
                if addresses
            },
            "EmailTags": tags,
        }
        if content.needs_raw(message):
            request["Content"] = content.raw(message)
            size = len(request["Content"]["Raw"]["Data"])
        else:
            request["Content"] = content.simple(message)
            # Reply-To is a header of the Raw message; Simple takes it as a parameter.
            if message.reply_to:
                request["ReplyToAddresses"] = [address(a) for a in message.reply_to]
            size = len(message.subject.encode()) + len(message.text.encode()) + len(message.html.encode())
        if size > MAX_RAW_BYTES:
            raise MessageRejected(NAME, f"the message is {size} bytes encoded; SES takes at most {MAX_RAW_BYTES}")
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        if self.from_arn:
            request["FromEmailAddressIdentityArn"] = self.from_arn
        return request
