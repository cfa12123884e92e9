import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer_project.settings")
application = get_wsgi_application()
# A server reachable from other machines never signs sessions with a key nobody chose: gunicorn
# cannot load the application, so it stops with this reason (settings.py, "Secret key and binding").
if settings.MISSING_SECRET_KEY:
    raise ImproperlyConfigured(settings.MISSING_SECRET_KEY)
