"""Amazon SES: v2 SendEmail through boto3 (sending.py) and its events through SNS (webhooks.py,
sns.py). See docs/providers.md, "Amazon SES"."""

from ..http import Timeouts
from ..spec import ProviderSpec, Setting, WebhookSpec
from . import sending, sns, webhooks


def _build(config, timeouts: Timeouts, connections: int) -> sending.SesProvider:
    return sending.SesProvider.connect(
        region=config.SES_REGION or config.AWS_REGION,
        endpoint_url=config.SES_ENDPOINT_URL,
        # Unset on AWS: boto3's chain finds the task role. Set locally for the emulator.
        access_key_id=getattr(config, "AWS_ACCESS_KEY_ID", None),
        secret_access_key=getattr(config, "AWS_SECRET_ACCESS_KEY", None),
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        connections=connections,
        configuration_set=config.SES_CONFIGURATION_SET,
        from_arn=config.SES_FROM_ARN,
        paused_circuit_seconds=config.SES_PAUSED_CIRCUIT_SECONDS,
    )


def _trust(config) -> sns.SnsTrust:
    return sns.SnsTrust(
        topic_arn=config.SES_SNS_TOPIC_ARN,
        tests_only_insecure_url_prefix=config.SES_SNS_TESTS_ONLY_INSECURE_URL_PREFIX,
        timeout=(config.PROVIDER_CONNECT_TIMEOUT, config.PROVIDER_READ_TIMEOUT),
    )


def _topic_arn(value: str) -> None:
    if value and not sns.TOPIC_ARN.fullmatch(value):
        raise ValueError(f"{value!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")


SPEC = ProviderSpec(
    name=sending.NAME,
    build=_build,
    settings=(
        # Empty: AWS_REGION.
        Setting("SES_REGION", ""),
        # The configuration set whose event destination publishes to SES_SNS_TOPIC_ARN; empty, SES
        # sends without one and reports no events.
        Setting("SES_CONFIGURATION_SET", ""),
        # The verified identity to send as, when it is another account's (sending authorization).
        Setting("SES_FROM_ARN", ""),
        # Empty: AWS itself. Locally, the embedded server's URL (moto speaks SES v2).
        Setting("SES_ENDPOINT_URL", ""),
        # How long SES's circuit stays open when SES says sending is paused.
        Setting("SES_PAUSED_CIRCUIT_SECONDS", 300.0, cast=float),
        # The topic SES publishes events to: only its notifications are believed and only its
        # subscription is confirmed. Unset, /webhooks/ses answers 503.
        Setting("SES_SNS_TOPIC_ARN", "", check=_topic_arn),
        # TESTS ONLY, never in a deployment: a loopback URL prefix whose certificates and
        # confirmation links are trusted besides https://sns.<region>.amazonaws.com/.
        Setting("SES_SNS_TESTS_ONLY_INSECURE_URL_PREFIX", "", check=sns.check_trust_settings),
    ),
    limits=sending.LIMITS,
    check_limits=sending.check_limits,
    # 403 for anything not signed by SNS for our topic, stale or replayed.
    webhook=WebhookSpec(
        key_setting="SES_SNS_TOPIC_ARN",
        refusal_status=403,
        read=webhooks.read,
        key_from_settings=_trust,
        # An SNS message is at most 256 kB; its envelope carries it as an escaped JSON string.
        max_body_bytes=512 * 1024,
        # SNS names the kind of every request in this header.
        signature_headers=("x-amz-sns-message-type",),
    ),
)
