from django.apps import AppConfig


class TemplatingConfig(AppConfig):
    name = "mail.templating"
    label = "templating"
    default_auto_field = "django.db.models.BigAutoField"
