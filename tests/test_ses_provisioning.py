"""`manage.py provision_ses` against the embedded AWS server (moto's SES and SNS): the identity,
the configuration set, the topic and the event destination exist afterwards, and a second run
changes nothing."""

import os

import boto3
from django.core.management import call_command


def client(service: str):
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=os.environ["SES_ENDPOINT_URL"],
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )


def test_provision_ses_sets_up_identity_configuration_set_topic_and_events(capsys):
    for _ in range(2):  # idempotent
        call_command(
            "provision_ses", "--identity", "provisioned.example", "--configuration-set", "prov-set", "--topic", "prov-events"
        )
    output = capsys.readouterr().out
    assert "SES_SNS_TOPIC_ARN=arn:aws:sns:us-east-1:" in output and "prov-events" in output

    identity = client("sesv2").get_email_identity(EmailIdentity="provisioned.example")
    assert identity["IdentityType"] == "DOMAIN"
    topics = [t["TopicArn"] for t in client("sns").list_topics()["Topics"]]
    topic_arn = next(t for t in topics if t.endswith(":prov-events"))
    described = client("ses").describe_configuration_set(
        ConfigurationSetName="prov-set", ConfigurationSetAttributeNames=["eventDestinations"]
    )
    (destination,) = described["EventDestinations"]
    assert destination["SNSDestination"]["TopicARN"] == topic_arn and destination["Enabled"]
    assert {"bounce", "complaint", "delivery"} <= set(destination["MatchingEventTypes"])
