"""Django's PostgreSQL backend with the pool's health check of mailer_project/database_pool.py."""
