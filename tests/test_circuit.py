"""The circuit breaker's rules (providers/circuit.py) on a clock the test moves, and its shared
state on the machine's real Redis: what each process decides is what every other one sees."""

import logging
import threading
import uuid

import pytest

from providers.circuit import Admission, BreakerConfig, Breakers, Outcome, RedisCircuits, State

CONFIG = BreakerConfig(
    failure_run=3,
    failure_rate=0.5,
    slow_call_seconds=2.0,
    slow_call_rate=0.5,
    min_calls=6,
    window_seconds=60,
    cooldown_seconds=30,
    probe_lease_seconds=10,
)
OK = Outcome(ok=True, latency=0.1)
FAILED = Outcome(ok=False, latency=0.1)
SLOW = Outcome(ok=True, latency=3.0)
REDIS_URL = "redis://127.0.0.1:6379/14"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def breakers(clock):
    return Breakers(CONFIG, clock=clock)


def report(breakers, *outcomes, provider="sendgrid"):
    for outcome in outcomes:
        admission, _ = breakers.admit(provider)
        assert admission is Admission.PASS
        breakers.record(provider, admission, outcome)


def test_a_run_of_failures_opens_it_and_a_success_breaks_the_run(breakers):
    report(breakers, FAILED, FAILED, OK, FAILED, FAILED)
    assert breakers.read("sendgrid").state is State.CLOSED

    report(breakers, FAILED)

    circuit = breakers.read("sendgrid")
    assert circuit.state is State.OPEN
    assert circuit.reason == "3 failures in a row"
    assert breakers.admit("sendgrid")[0] is Admission.REFUSED
    assert breakers.admit("mailgun")[0] is Admission.PASS  # one circuit per provider


def test_a_failure_rate_over_the_window_opens_it_once_there_are_enough_calls(breakers):
    report(breakers, FAILED, OK, FAILED, OK, FAILED)  # 3 of 5: too few calls to judge
    assert breakers.read("sendgrid").state is State.CLOSED

    report(breakers, OK)  # 3 of 6: half failed

    assert breakers.read("sendgrid").reason == "3 of 6 calls failed in 60 s"


def test_failures_older_than_the_window_no_longer_count(breakers, clock):
    report(breakers, FAILED, OK, FAILED, OK, FAILED)
    clock.now += 70

    report(breakers, OK)

    assert breakers.read("sendgrid").state is State.CLOSED
    assert breakers.read("sendgrid").window() == (1, 0, 0)


def test_slow_answers_open_it_even_when_they_succeed(breakers):
    report(breakers, SLOW, OK, SLOW, OK, SLOW, SLOW)

    assert breakers.read("sendgrid").reason == "4 of 6 calls took over 2 s"


def test_a_429_with_retry_after_opens_it_for_that_long(breakers, clock):
    report(breakers, Outcome(ok=False, latency=0.1, retry_after=90))

    assert breakers.read("sendgrid").reason == "429: retry after 90 s"
    clock.now += 89
    assert breakers.admit("sendgrid")[0] is Admission.REFUSED  # longer than the 30 s cool-down
    clock.now += 1
    assert breakers.admit("sendgrid")[0] is Admission.PROBE


def test_after_the_cool_down_one_probe_goes_and_its_success_closes_it(breakers, clock):
    report(breakers, FAILED, FAILED, FAILED)
    clock.now += 30

    probe, _ = breakers.admit("sendgrid")
    others, circuit = breakers.admit("sendgrid")

    assert (probe, others, circuit.state) == (Admission.PROBE, Admission.REFUSED, State.HALF_OPEN)
    breakers.record("sendgrid", probe, OK)
    assert breakers.read("sendgrid").state is State.CLOSED
    assert breakers.admit("sendgrid")[0] is Admission.PASS


@pytest.mark.parametrize("outcome", [FAILED, SLOW], ids=["failed", "slow"])
def test_a_failed_or_slow_probe_opens_it_again_for_another_cool_down(breakers, clock, outcome):
    report(breakers, FAILED, FAILED, FAILED)
    clock.now += 30
    probe, _ = breakers.admit("sendgrid")

    breakers.record("sendgrid", probe, outcome)

    assert breakers.read("sendgrid").state is State.OPEN
    clock.now += 29
    assert breakers.admit("sendgrid")[0] is Admission.REFUSED
    clock.now += 1
    assert breakers.admit("sendgrid")[0] is Admission.PROBE


def test_a_probe_that_learned_nothing_is_released_for_the_next_send(breakers, clock):
    # Our own fault, or a message refused before any request: no verdict on the provider, and
    # no reason to make every other send wait out the probe's lease.
    report(breakers, FAILED, FAILED, FAILED)
    clock.now += 30
    probe, _ = breakers.admit("sendgrid")

    breakers.release("sendgrid", probe)

    assert breakers.admit("sendgrid")[0] is Admission.PROBE


def test_a_probe_whose_worker_died_is_taken_over_when_its_lease_ends(breakers, clock):
    report(breakers, FAILED, FAILED, FAILED)
    clock.now += 30
    assert breakers.admit("sendgrid")[0] is Admission.PROBE  # and never reported

    clock.now += 9
    assert breakers.admit("sendgrid")[0] is Admission.REFUSED
    clock.now += 1
    assert breakers.admit("sendgrid")[0] is Admission.PROBE


# --- shared through Redis ------------------------------------------------------------------------


@pytest.fixture
def redis_prefix():
    return f"test:circuit:{uuid.uuid4().hex}"


def test_two_processes_share_one_circuit_through_redis(clock, redis_prefix):
    worker_a = Breakers(CONFIG, RedisCircuits(REDIS_URL, redis_prefix), clock=clock)
    worker_b = Breakers(CONFIG, RedisCircuits(REDIS_URL, redis_prefix), clock=clock)

    report(worker_a, FAILED, FAILED, FAILED)

    assert worker_b.admit("sendgrid")[0] is Admission.REFUSED
    clock.now += 30
    assert worker_b.admit("sendgrid")[0] is Admission.PROBE
    assert worker_a.admit("sendgrid")[0] is Admission.REFUSED  # B holds the only probe


def test_concurrent_reports_are_all_counted(redis_prefix):
    # Without WATCH/MULTI, two workers reading the same record and writing it back lose a count.
    config = BreakerConfig(failure_run=10_000, min_calls=10_000)
    workers = [Breakers(config, RedisCircuits(REDIS_URL, redis_prefix)) for _ in range(8)]

    def send_many(breakers):
        for _ in range(25):
            breakers.record("sendgrid", Admission.PASS, FAILED)

    threads = [threading.Thread(target=send_many, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    circuit = workers[0].read("sendgrid")
    assert circuit.failures_in_a_row == 200
    assert circuit.window() == (200, 200, 0)


def test_without_redis_answering_each_process_decides_alone_and_says_so(clock, caplog):
    unreachable = RedisCircuits("redis://127.0.0.1:1/0", "test:circuit:down")
    breakers = Breakers(CONFIG, unreachable, clock=clock)

    with caplog.at_level(logging.WARNING, logger="providers.circuit"):
        report(breakers, FAILED, FAILED, FAILED)

    assert breakers.admit("sendgrid")[0] is Admission.REFUSED
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings.count("breaker state store unavailable; deciding in this process alone") == 1
    assert "circuit open" in warnings
