"""Django settings of the common stack: just enough for django-anymail's SendGrid backend."""

import os

SECRET_KEY = "bench-only"
INSTALLED_APPS = ["anymail"]
DATABASES = {}
USE_TZ = True
EMAIL_BACKEND = "anymail.backends.sendgrid.EmailBackend"
ANYMAIL = {
    "SENDGRID_API_KEY": os.environ.get("SENDGRID_API_KEY", "bench"),
    # anymail appends "mail/send" to this.
    "SENDGRID_API_URL": os.environ["SENDGRID_API_URL"].rstrip("/") + "/v3/",
}
DEFAULT_FROM_EMAIL = "bench@example.com"
