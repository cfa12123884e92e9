import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("mail", "0009_default_team")]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="team",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="messages", to="mail.team"
            ),
        ),
        migrations.AlterField(
            model_name="suppression",
            name="team",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="suppressions", to="mail.team"
            ),
        ),
    ]
