from django.core.management.base import BaseCommand
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    help = "Create an API key. The key is printed once; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who or what the key is for (shown in the admin)")

    def handle(self, *args, name, **options):
        api_key, key = APIKey.objects.create_key(name=name)
        self.stderr.write(f"Created API key {api_key.prefix} for {name!r}. Store it now; it cannot be shown again:")
        self.stdout.write(key)
