# The two commands of the README: `make run` and `make test`. Both set up what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests run on PostgreSQL, as production does; this machine kind runs one with trust auth.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: install install-bench run services test test-fast check check-deploy format clean bench bench-failover bench-accept \
	bench-delivery bench-delivery-processes bench-accept-profile bench-memory image image-test image-clean

# The image (docs/image.md): built and run with podman, which needs a configuration of its own on
# this machine kind (podman/containers-conf.sh). Every podman below, the tests' included, uses it.
IMAGE ?= mailer:local
IMAGE_TOOLS ?= var/image-tools
export CONTAINERS_CONF ?= $(abspath var/podman/containers.conf)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# The benchmarks' extra tools (matplotlib for the plots); wrk comes from Debian: apt-get install wrk.
$(VENV)/.installed-bench: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

install-bench: $(VENV)/.installed-bench

## Run the whole service locally: embedded SQS server, provider simulator, API and worker, with log
## lines in one readable line each (LOG_FORMAT=json for what production writes).
run: install
	LOG_FORMAT=$${LOG_FORMAT:-text} $(PY) manage.py runlocal

## Only what the service needs around it (the SQS/S3 server, the provider simulator), set up, for
## `manage.py runserver` and `celery -A mailer_project worker` in terminals of their own.
services: install
	LOG_FORMAT=$${LOG_FORMAT:-text} $(PY) manage.py runlocal --services

## The whole test suite (slow tests included) against PostgreSQL.
test: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) -m pytest $(PYTEST_ARGS)

## Only the tests that start no service processes.
test-fast: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## Lint, Django's checks, migrations in step with the models, the deployment files. The import
## rules and module sizes are tests (tests/test_architecture.py), so `make test` holds them too.
check: install check-deploy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

## Format the code and fix what `ruff check` can fix by itself.
format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Issue 7's measurement: SendGrid down, accept → sent by Mailgun with and without the breaker.
bench-failover: install
	$(PY) bench/failover.py

## The accept path (issues 10, 21): POST throughput and latency by concurrency beside the common
## accept stack (a DRF view queuing a Celery task) and a bare SQS publish loop, latency at half the
## peak, peak memory (about 10 minutes; needs wrk). `--server-model gthread` after bench/accept.py
## measures gunicorn's threads instead of gevent.
bench-accept: install-bench
	$(PY) bench/accept.py

## Issue 10's delivery path: one worker process per pool and concurrency against a 100 ms provider,
## beside django-anymail in a plain Celery task, with connection reuse and memory (about 15 minutes).
bench-delivery: install-bench
	$(PY) bench/delivery.py

## Issue 21's delivery: gevent × 64, one worker process and two side by side, each beside the
## common stack, with the CPU each message costs (about 10 minutes).
bench-delivery-processes: install-bench
	$(PY) bench/delivery.py --configs gevent:64 --processes 1,2 \
		--out docs/benchmarks/delivery-issue21-processes.json --plot docs/benchmarks/delivery-issue21-processes.png

## Issue 21's accept CPU: where an accept's CPU goes, by area, one request at a time (about 2 minutes).
bench-accept-profile: install
	$(PY) bench/accept_profile.py

## Issue 21's memory: both `serve` trees warm, RSS, peak and PSS of every process (about 3 minutes).
bench-memory: install
	$(PY) bench/memory.py

## The measurements, one after the other (never two at once: they share the cores).
bench: bench-accept bench-accept-profile bench-delivery bench-delivery-processes bench-memory

## The deployment files, without Docker or AWS: the Dockerfile's lint, the compose file against
## the Compose specification's schema, the CloudFormation template's lint, the Prometheus alerts
## checked and unit-tested (promtool: Debian's prometheus package, installed by .ci/run).
check-deploy: install
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(VENV)/bin/cfn-lint deploy/cloudformation.yml
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

## The production image from the Dockerfile (podman; the base image pulled, or where no registry
## is reachable a stand-in built from Debian's packages: podman/ensure-image.sh).
image: $(CONTAINERS_CONF)
	podman/build-image.sh $(IMAGE)

$(CONTAINERS_CONF): podman/containers-conf.sh
	podman/containers-conf.sh $@

# podman-compose for the compose test, in a virtualenv of its own (requirements-image.txt).
$(IMAGE_TOOLS)/.installed: requirements-image.txt
	$(PYTHON) -m venv $(IMAGE_TOOLS)
	$(IMAGE_TOOLS)/bin/python -m pip install --quiet -r requirements-image.txt
	touch $@

## The built image tested as deployed (tests/image/): every role in containers against this
## machine's PostgreSQL and Redis, moto's SQS and the provider simulator; then the compose stack.
## The tests fail, never skip, when something they need is missing.
image-test: install image $(IMAGE_TOOLS)/.installed
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} MAILER_IMAGE=$(IMAGE) \
	PODMAN_COMPOSE=$(abspath $(IMAGE_TOOLS))/bin/podman-compose \
	$(PY) -m pytest tests/image -p no:cacheprovider --durations=0 $(PYTEST_ARGS)

## Removes what the image tests left (containers, volumes, networks labelled by them) and the
## images they use; the next `make image-test` starts from an empty cache.
image-clean: $(CONTAINERS_CONF)
	podman/clean.sh $(IMAGE)

clean:
	rm -rf $(VENV) var .pytest_cache
