"""Every key made before teams existed keeps working: it gets a profile in the default team with
every scope, and the mail and suppressions so far belong to that team. A message's lower-cased
recipients are copied to the array the list's recipient filter reads."""

from django.db import migrations

SCOPES = ["messages:send", "messages:read", "suppressions:manage", "webhooks:manage", "templates:manage"]


def forwards(apps, schema_editor):
    Team = apps.get_model("mail", "Team")
    APIKey = apps.get_model("rest_framework_api_key", "APIKey")
    ApiKeyProfile = apps.get_model("mail", "ApiKeyProfile")
    team, _ = Team.objects.get_or_create(name="default")
    ApiKeyProfile.objects.bulk_create(
        [
            ApiKeyProfile(api_key_id=pk, team=team, scopes=SCOPES, allowed_networks=[])
            for pk in APIKey.objects.values_list("pk", flat=True)
        ],
        ignore_conflicts=True,
    )
    Message, Suppression = apps.get_model("mail", "Message"), apps.get_model("mail", "Suppression")
    Suppression.objects.filter(team__isnull=True).update(team=team)
    if schema_editor.connection.vendor != "postgresql":
        # SQLite, the local run: a developer's few messages, row by row.
        for message in Message.objects.filter(team__isnull=True).only("recipients"):
            message.team = team
            message.recipient_addresses = [a for a in message.recipients.lower().split(", ") if a]
            message.save(update_fields=["team", "recipient_addresses"])
        return
    with schema_editor.connection.cursor() as cursor:
        # Set-based, not row by row in Python; a recipients column is "a@x, b@y".
        cursor.execute(
            "UPDATE mail_message SET team_id = %s, recipient_addresses = "
            "CASE WHEN recipients = '' THEN '[]'::jsonb ELSE to_jsonb(string_to_array(lower(recipients), ', ')) END "
            "WHERE team_id IS NULL",
            [team.pk],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0008_teams_scoped_keys_and_message_search"),
        ("rest_framework_api_key", "0005_auto_20220110_1102"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
