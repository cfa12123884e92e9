# The two commands of the README: `make run` and `make test`. Both set up what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests run on PostgreSQL, as production does; this machine kind runs one with trust auth.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: install run test test-fast check check-deploy clean bench-failover

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

## Run the whole service locally: embedded SQS server, provider simulator, API and worker.
run: install
	$(PY) manage.py runlocal

## The whole test suite (slow tests included) against PostgreSQL.
test: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) -m pytest $(PYTEST_ARGS)

## Only the tests that start no service processes.
test-fast: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

check: install check-deploy
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

## Issue 7's measurement: SendGrid down, accept → sent by Mailgun with and without the breaker.
bench-failover: install
	$(PY) bench/failover.py

## The deployment files, without Docker or AWS: the Dockerfile's lint, the compose file against
## the Compose specification's schema, the CloudFormation template's lint.
check-deploy: install
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(VENV)/bin/cfn-lint deploy/cloudformation.yml

clean:
	rm -rf $(VENV) var .pytest_cache
