import pytest
from rest_framework.test import APIClient

from mail import claim_check, keys, queues
from mail.management.commands.serve import processor_argv

from .faults import SqsActionProxy
from .stack import Stack
from .support import ServiceProcess, Simulator, drain, service_env


@pytest.fixture(scope="session")
def provisioned_queues():
    """The queues, and the bucket for large messages (as `manage.py provision_queues` makes them)."""
    provisioned = queues.provision()
    claim_check.provision()
    return provisioned


@pytest.fixture
def sqs():
    return queues.sqs_client()


@pytest.fixture
def empty_queues(provisioned_queues, sqs):
    """The queues with no visible message left by earlier tests (SQS allows one PurgeQueue a
    minute, so they are drained instead)."""
    for url in (provisioned_queues.queue_url, provisioned_queues.dlq_url):
        drain(sqs, url)
    return provisioned_queues


@pytest.fixture
def simulator():
    simulator = Simulator()
    simulator.reset()
    return simulator


@pytest.fixture
def api_key(db):
    """(the stored APIKey, the key a client sends)"""
    return keys.create("test client")


@pytest.fixture
def operator(client, django_user_model):
    """The test client, logged into the admin as a superuser."""
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


@pytest.fixture
def api_client(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    return client


@pytest.fixture(scope="module")
def worker(django_db_setup, provisioned_queues, tmp_path_factory):
    """A real Celery worker process (the production command line) reading the run's database and
    the embedded SQS server's "mail" queue, for the tests of one module. Module-scoped so that
    modules which read the queue themselves do not race a worker. Tests using it need
    transactional_db so that what they write is committed and visible to it."""
    process = ServiceProcess(processor_argv(), service_env(), tmp_path_factory.mktemp("worker") / "worker.log")
    process.wait_for_output("ready.")
    yield process
    process.stop()


@pytest.fixture
def make_stack(tmp_path, simulator):
    """Build a tests.stack.Stack (queues of its own, the API started); stopped after the test."""
    stacks = []

    def make(**env) -> Stack:
        stack = Stack(tmp_path, **env)
        stacks.append(stack)
        stack.start_api()
        return stack

    yield make
    for stack in stacks:
        stack.kill()


@pytest.fixture
def sqs_proxy():
    """An SqsActionProxy (tests/faults.py) in front of the embedded SQS server: a stack made with
    SQS_ENDPOINT_URL=sqs_proxy.url publishes through it."""
    proxy = SqsActionProxy(service_env()["SQS_ENDPOINT_URL"])
    yield proxy
    proxy.close()
