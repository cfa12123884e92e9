from django.core.management.base import BaseCommand

from mail import services


class Command(BaseCommand):
    help = (
        "Queue the scheduled messages due within SQS's 15-minute delay (the processor's "
        "drain_dlq loop does this every few seconds; this runs it once)."
    )

    def handle(self, *args, **options):
        self.stdout.write(f"{services.release_scheduled()} scheduled message(s) released")
