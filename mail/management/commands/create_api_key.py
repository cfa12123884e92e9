from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from mail import keys
from mail.models import DEFAULT_TEAM_NAME, Scope, Team


class Command(BaseCommand):
    help = "Create an API key in a team, with scopes. The key is printed once; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who or what the key is for (shown in the admin)")
        parser.add_argument(
            "--team", default=DEFAULT_TEAM_NAME, help=f"the team's name, created if new (default: {DEFAULT_TEAM_NAME})"
        )
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=Scope.values,
            help="a scope the key has; repeat for more (default: every scope but erasures:manage)",
        )
        parser.add_argument(
            "--sandbox", action="store_true", help="a sandbox key: its mail is accepted and followed but never sent"
        )
        parser.add_argument("--expires", help="when the key stops working, ISO 8601 with a zone (default: never)")
        parser.add_argument(
            "--allow", action="append", default=[], help="an address or CIDR network it may be used from; repeat for more"
        )

    def handle(self, *args, name, team, scopes, expires, allow, sandbox, **options):
        expiry = parse_datetime(expires) if expires else None
        if expires and (expiry is None or expiry.tzinfo is None):
            raise CommandError(f"--expires {expires!r}: expected ISO 8601 with a zone, such as 2027-01-31T00:00:00Z")
        team_row, _ = Team.objects.get_or_create(name=team)
        try:
            api_key, key = keys.create(name, team_row, scopes or None, expiry, allow, sandbox)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(
            f"Created {'sandbox ' if sandbox else ''}API key {api_key.prefix} for {name!r} in team {team!r} ({', '.join(api_key.profile.scopes)}). "
            "Store it now; it cannot be shown again:"
        )
        self.stdout.write(key)
