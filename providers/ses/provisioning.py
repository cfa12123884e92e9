"""SES's side of a deployment made against the local emulator (moto) or an account by hand: the
sending identity, the configuration set, the SNS topic and the event destination that publishes
the set's events to it, and optionally the topic's subscription to the service's webhook. On AWS
the CloudFormation template makes the same (deploy/cloudformation.yml, "Amazon SES"). Every step
may run again."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

# The SES event types the webhook reads (providers/ses/webhooks.py EVENTS), as the v2 API names them.
EVENT_TYPES = ["SEND", "REJECT", "BOUNCE", "COMPLAINT", "DELIVERY", "DELIVERY_DELAY", "OPEN", "CLICK"]
DESTINATION_NAME = "mailer-webhook"


@dataclass(frozen=True)
class Provisioned:
    identity: str
    configuration_set: str
    topic_arn: str
    subscription_arn: str = ""


def provision(
    sesv2, sns, *, identity: str, configuration_set: str, topic_name: str, webhook_url: str = "", ses_v1=None
) -> Provisioned:
    """sesv2, sns (and ses_v1, the older SES API, for an emulator without v2 event destinations):
    boto3 clients of one region."""
    _unless_exists(lambda: sesv2.create_email_identity(EmailIdentity=identity))
    _unless_exists(lambda: sesv2.create_configuration_set(ConfigurationSetName=configuration_set))
    topic_arn = sns.create_topic(Name=topic_name)["TopicArn"]  # returns the existing one's ARN
    destination = {"Enabled": True, "MatchingEventTypes": EVENT_TYPES, "SnsDestination": {"TopicArn": topic_arn}}
    try:
        _unless_exists(
            lambda: sesv2.create_configuration_set_event_destination(
                ConfigurationSetName=configuration_set, EventDestinationName=DESTINATION_NAME, EventDestination=destination
            )
        )
    except ClientError as exc:
        # moto's SES v2 has no event destinations (it answers 404); its SES v1 has them, and they
        # are the same configuration set's.
        if ses_v1 is None or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
            raise
        v1_destination = {
            "Name": DESTINATION_NAME,
            "Enabled": True,
            "MatchingEventTypes": ["send", "reject", "bounce", "complaint", "delivery", "deliveryDelay", "open", "click"],
            "SNSDestination": {"TopicARN": topic_arn},
        }
        _unless_exists(
            lambda: ses_v1.create_configuration_set_event_destination(
                ConfigurationSetName=configuration_set, EventDestination=v1_destination
            )
        )
    subscription_arn = ""
    if webhook_url:
        protocol = "https" if webhook_url.startswith("https://") else "http"
        answer = sns.subscribe(TopicArn=topic_arn, Protocol=protocol, Endpoint=webhook_url, ReturnSubscriptionArn=True)
        subscription_arn = answer["SubscriptionArn"]
    return Provisioned(identity, configuration_set, topic_arn, subscription_arn)


def _unless_exists(call) -> None:
    try:
        call()
    except ClientError as exc:
        # AlreadyExistsException (SES v2), ConfigurationSetAlreadyExists..., EventDestinationAlreadyExists (v1)
        if not str(exc.response.get("Error", {}).get("Code", "")).endswith(("AlreadyExists", "AlreadyExistsException")):
            raise
