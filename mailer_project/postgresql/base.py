"""Django's PostgreSQL backend, its pool checking a connection only when it has sat idle.

Django gives its pool psycopg_pool's check for every checkout (CONN_HEALTH_CHECKS) or none, and
takes no check of ours in OPTIONS["pool"] (it passes `check` itself). So the pool Django builds
is given ours as it is first handed out (mailer_project/database_pool.py says why);
tests/test_settings.py holds that it is the one in use, should psycopg_pool change."""

from django.conf import settings
from django.db.backends.postgresql import base

from mailer_project.database_pool import CheckWhenIdle


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        if pool is not None and not isinstance(pool._check, CheckWhenIdle):
            pool._check = CheckWhenIdle(settings.DATABASE_POOL_CHECK_IDLE_SECONDS)
        return pool
