from django.conf import settings
from django.core.management.base import BaseCommand

from mail import claim_check, queues


class Command(BaseCommand):
    help = (
        "Create or update the delivery queue, the callbacks' queue and their dead-letter queues (redrive policy, visibility "
        "timeout, 1 MiB messages, 14-day DLQ retention) and, with S3_BUCKET, the bucket for large "
        "messages (encrypted, private, leftovers expired). Safe to run again; works against AWS "
        "and the embedded server alike."
    )

    def handle(self, *args, **options):
        provisioned = queues.provision()
        self.stdout.write(
            f"queue {settings.SQS_QUEUE_NAME}: {provisioned.queue_url}\n"
            f"dead-letter queue {settings.SQS_DLQ_NAME}: {provisioned.dlq_url} "
            f"(after {settings.SQS_MAX_RECEIVE_COUNT} receives)\n"
            f"callbacks queue {settings.CALLBACK_QUEUE_NAME}: {provisioned.callback_queue_url}\n"
            f"callbacks dead-letter queue {settings.CALLBACK_DLQ_NAME}: {provisioned.callback_dlq_url}"
        )
        if claim_check.enabled():
            claim_check.provision()
            self.stdout.write(
                f"bucket {settings.S3_BUCKET} for messages over {settings.LARGE_MESSAGE_BYTES} queue bytes "
                f"(SSE, no public access, bodies expire after {claim_check.LIFETIME_DAYS} days)"
            )
