"""The S3 claim-check: a mail too big for one SQS message is stored in S3, and its delivery task
carries a pointer instead (with the attachments' names and sizes, for the operator).

The object's key is derived from the message id, so whoever knows the message can delete its
body; the bucket's lifecycle rule expires what was never deleted (a failed message's body is kept
for a requeue until then, which is longer than the dead-letter queue keeps its task)."""

from __future__ import annotations

import io
import json
import logging
import math

import boto3
from botocore.config import Config
from django.conf import settings

from providers.base import decoded_length

from .exceptions import BodyMissing, StorageUnavailable

log = logging.getLogger(__name__)

POINTER = "claim_check"
PREFIX = "messages/"
# Longer than the dead-letter queue keeps a task, whose requeue needs the body; never longer than
# bodies are kept (BODY_RETENTION_DAYS, mail/retention.py).
LIFETIME_DAYS = min(math.ceil(settings.SQS_DLQ_RETENTION_SECONDS / 86400) + 1, settings.BODY_RETENTION_DAYS)


def enabled() -> bool:
    return bool(settings.S3_BUCKET)


def s3_client():
    return boto3.client(
        "s3",
        region_name=settings.AWS_REGION,
        endpoint_url=settings.S3_ENDPOINT_URL or None,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        # Path-style: a local server on 127.0.0.1 has no per-bucket host names. Timeouts as SQS's,
        # with room to read a 25 MB body.
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=3,
            read_timeout=30,
            retries={"mode": "standard", "total_max_attempts": 2},
        ),
    )


def key_for(message_id: str) -> str:
    return f"{PREFIX}{message_id}.json"


def is_pointer(payload: dict) -> bool:
    return POINTER in payload


def store(message_id: str, payload: dict) -> dict:
    """Put the payload in S3; return the pointer payload that travels in its place."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    try:
        # boto3's managed transfer: a multipart upload above 8 MB, parts sent in parallel and
        # retried alone (and some S3-compatible servers take no single request of 25 MB).
        s3_client().upload_fileobj(
            io.BytesIO(body),
            settings.S3_BUCKET,
            key_for(message_id),
            ExtraArgs={"ContentType": "application/json", "ServerSideEncryption": "AES256"},
        )
    except Exception as exc:
        log.exception("S3 did not store a message body", extra={"message_id": message_id, "bytes": len(body)})
        raise StorageUnavailable(f"S3 did not store the message: {exc!r}") from exc
    return {
        POINTER: {
            "bucket": settings.S3_BUCKET,
            "key": key_for(message_id),
            "bytes": len(body),
            "attachments": [
                {"filename": a["filename"], "content_type": a["content_type"], "bytes": decoded_length(a["content"])}
                for a in payload.get("attachments", [])
            ],
        }
    }


def load(payload: dict) -> dict:
    """The payload itself, from S3 when this is a pointer."""
    if not is_pointer(payload):
        return payload
    pointer = payload[POINTER]
    client = s3_client()
    try:
        body = client.get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"].read()
    except client.exceptions.NoSuchKey as exc:
        raise BodyMissing(f"the message's body is gone from s3://{pointer['bucket']}/{pointer['key']}") from exc
    except Exception as exc:
        raise StorageUnavailable(f"S3 did not return the message: {exc!r}") from exc
    return json.loads(body)


def exists(message_id: str) -> bool:
    """Whether the message's stored body is still there (False also when S3 does not answer)."""
    try:
        s3_client().head_object(Bucket=settings.S3_BUCKET, Key=key_for(message_id))
        return True
    except Exception:
        return False


def discard(message_id: str) -> None:
    """Delete a message's stored body, if it has one. Best effort: the lifecycle rule is the net."""
    try:
        s3_client().delete_object(Bucket=settings.S3_BUCKET, Key=key_for(message_id))
    except Exception:
        log.warning(
            "could not delete a stored message body; the bucket's lifecycle rule will",
            extra={"message_id": message_id},
            exc_info=True,
        )


def provision() -> None:
    """Create the bucket if missing; encryption at rest, no public access, and expiry of leftovers.
    Idempotent, like the queues' provisioning."""
    client = s3_client()
    bucket = settings.S3_BUCKET
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        options = (
            {}
            if settings.AWS_REGION == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": settings.AWS_REGION}}
        )
        client.create_bucket(Bucket=bucket, **options)
        log.info("created bucket", extra={"bucket": bucket})
    client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    )
    client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-message-bodies",
                    "Filter": {"Prefix": PREFIX},
                    "Status": "Enabled",
                    "Expiration": {"Days": LIFETIME_DAYS},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
