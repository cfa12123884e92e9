from django.apps import AppConfig


class CallbacksConfig(AppConfig):
    name = "mail.callbacks"
    label = "callbacks"
    default_auto_field = "django.db.models.BigAutoField"
