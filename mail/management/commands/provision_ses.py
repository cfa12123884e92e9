import boto3
from django.conf import settings
from django.core.management.base import BaseCommand

from providers.ses import provisioning


class Command(BaseCommand):
    help = (
        "Set up Amazon SES for the service: the sending identity, the configuration set "
        "(SES_CONFIGURATION_SET), the SNS topic its events go to and the event destination, and with "
        "--webhook-url the topic's subscription. For the embedded server (SES_ENDPOINT_URL) and "
        "accounts set up by hand; CloudFormation makes the same on AWS. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--identity", required=True, help="the address or domain mail is sent from")
        parser.add_argument("--topic", default="mailer-ses-events", help="the SNS topic's name")
        parser.add_argument("--configuration-set", default="", help="default: SES_CONFIGURATION_SET, else mailer")
        parser.add_argument("--webhook-url", default="", help="subscribe this URL (https://<host>/webhooks/ses)")

    def handle(self, *args, identity, topic, configuration_set, webhook_url, **options):
        def client(service: str):
            return boto3.session.Session().client(
                service,
                region_name=settings.SES_REGION or settings.AWS_REGION,
                endpoint_url=settings.SES_ENDPOINT_URL or None,
                aws_access_key_id=settings.AWS_ACCESS_KEY_ID or None,
                aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY or None,
            )

        done = provisioning.provision(
            client("sesv2"),
            client("sns"),
            ses_v1=client("ses"),
            identity=identity,
            configuration_set=configuration_set or settings.SES_CONFIGURATION_SET or "mailer",
            topic_name=topic,
            webhook_url=webhook_url,
        )
        self.stdout.write(
            f"identity {done.identity}; configuration set {done.configuration_set}, its events to {done.topic_arn}\n"
            f"set SES_CONFIGURATION_SET={done.configuration_set} SES_SNS_TOPIC_ARN={done.topic_arn}"
            + (f"\nsubscribed {webhook_url}: {done.subscription_arn}" if done.subscription_arn else "")
        )
