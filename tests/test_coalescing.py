"""mail/coalescing.py: callers of one process share flushes. Real threads, a flush the test holds
open with an event, and the coalescer's own count of waiting callers to know when they queue."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mail.coalescing import Coalescer

from .support import wait_until


class Flushes:
    """A flush that records each group it gets, answers each item with its double, and can be
    held open (the first flush waits for release()) to let callers pile up behind it."""

    def __init__(self, hold: bool = False, fail_on=None):
        self.groups: list[list] = []
        self.started = threading.Event()
        self._open = threading.Event()
        if not hold:
            self._open.set()
        self.fail_on = fail_on

    def release(self) -> None:
        self._open.set()

    def __call__(self, items: list) -> list:
        self.groups.append(list(items))
        self.started.set()
        self._open.wait(timeout=10)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"flush of {items} failed")
        return [ValueError(item) if item == "bad" else item * 2 for item in items]


def queue_behind(pool, coalescer, items) -> list:
    """Submit the items one by one, each once the one before is waiting: their order is known."""
    futures = []
    for item in items:
        already = coalescer.waiting()
        futures.append(pool.submit(coalescer.submit, item))
        wait_until(lambda already=already: coalescer.waiting() == already + 1, timeout=10)
    return futures


def test_a_lone_caller_flushes_its_own_item_at_once():
    flushes = Flushes()
    coalescer = Coalescer(flushes, max_weight=10)

    assert coalescer.submit(21) == 42
    assert coalescer.submit(5) == 10
    assert flushes.groups == [[21], [5]]


def test_callers_arriving_during_a_flush_share_the_next_one_in_order():
    flushes = Flushes(hold=True)
    coalescer = Coalescer(flushes, max_weight=10)
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(coalescer.submit, 1)
        assert flushes.started.wait(timeout=10)
        later = queue_behind(pool, coalescer, (2, 3, 4, 5))
        flushes.release()

        assert first.result(timeout=10) == 2
        assert [future.result(timeout=10) for future in later] == [4, 6, 8, 10]
    assert flushes.groups == [[1], [2, 3, 4, 5]]
    assert coalescer.waiting() == 0


def test_a_flush_takes_at_most_max_weight_and_a_heavy_item_goes_alone():
    flushes = Flushes(hold=True)
    coalescer = Coalescer(lambda items: flushes([len(item) for item in items]), max_weight=5, weigh=len)
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(coalescer.submit, "a")]
        assert flushes.started.wait(timeout=10)
        futures += queue_behind(pool, coalescer, ("bb", "ccc", "dddddddd", "e"))
        flushes.release()

        assert [future.result(timeout=10) for future in futures] == [2, 4, 6, 16, 2]
    assert flushes.groups == [[1], [2, 3], [8], [1]]


def test_an_item_whose_result_is_an_exception_raises_in_its_own_caller_only():
    flushes = Flushes(hold=True)
    coalescer = Coalescer(flushes, max_weight=10)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(coalescer.submit, 1)
        assert flushes.started.wait(timeout=10)
        bad, good = queue_behind(pool, coalescer, ("bad", 3))
        flushes.release()

        assert first.result(timeout=10) == 2
        with pytest.raises(ValueError, match="bad"):
            bad.result(timeout=10)
        assert good.result(timeout=10) == 6
    assert flushes.groups == [[1], ["bad", 3]]


def test_a_failed_flush_reaches_each_caller_of_its_group_and_the_next_group_still_flushes():
    flushes = Flushes(hold=True, fail_on=2)
    coalescer = Coalescer(flushes, max_weight=2)
    with ThreadPoolExecutor(max_workers=5) as pool:
        first = pool.submit(coalescer.submit, 1)
        assert flushes.started.wait(timeout=10)
        later = queue_behind(pool, coalescer, (2, 3, 4))
        flushes.release()

        assert first.result(timeout=10) == 2
        for future in later[:2]:
            with pytest.raises(RuntimeError, match=r"flush of \[2, 3\] failed"):
                future.result(timeout=10)
        assert later[2].result(timeout=10) == 8
    assert flushes.groups == [[1], [2, 3], [4]]
    assert coalescer.submit(5) == 10  # and the coalescer is free again


def test_a_flush_that_miscounts_its_results_fails_its_callers_instead_of_misanswering_them():
    coalescer = Coalescer(lambda items: items[:-1], max_weight=10)

    with pytest.raises(RuntimeError, match="a flush of 1 items returned 0 results"):
        coalescer.submit("x")
    assert Coalescer(lambda items: items, max_weight=10).submit("y") == "y"


def test_a_leader_waits_the_window_for_company_only_when_the_last_flush_had_company():
    naps = []
    flushes = Flushes(hold=True)
    coalescer = Coalescer(flushes, max_weight=10, window_seconds=0.002, sleep=naps.append)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(coalescer.submit, 1)
        assert flushes.started.wait(timeout=5)
        later = queue_behind(pool, coalescer, (2, 3))
        flushes.release()
        assert [future.result(timeout=5) for future in (first, *later)] == [2, 4, 6]

    assert flushes.groups == [[1], [2, 3]]
    # The first leader waited (a new process may start busy); the second did not: its last flush
    # had gone alone.
    assert naps == [0.002]
    assert coalescer.submit(4) == 8  # after [2, 3]: it waits
    assert naps == [0.002, 0.002]
    assert coalescer.submit(5) == 10  # after [4], alone: it does not
    assert naps == [0.002, 0.002]


GEVENT_SCRIPT = """
import gevent, gevent.event
from mail.coalescing import Coalescer

groups, gates = [], [gevent.event.Event() for _ in range(3)]
def flush(items):
    groups.append(list(items))
    gates[len(groups) - 1].wait()  # each flush held until the script opens its gate
    return items

coalescer = Coalescer(flush, max_weight=10)
first = gevent.spawn(coalescer.submit, "first")
gevent.sleep(0)
gone = gevent.spawn(coalescer.submit, "gone")
second = gevent.spawn(coalescer.submit, "second")
taken = gevent.spawn(coalescer.submit, "taken")
gevent.sleep(0)
assert coalescer.waiting() == 3
gone.kill()  # GreenletExit while it waits: its item is never flushed
assert coalescer.waiting() == 2
gates[0].set()
first.join()
gevent.sleep(0)
assert groups == [["first"], ["second", "taken"]], groups
# Killed while a flush has its item: it waits for that flush to end before it goes.
gevent.spawn(taken.kill)
gevent.sleep(0.05)
assert not taken.dead, "left while the flush that took its item was under way"
gates[1].set()
gevent.joinall([second, taken], timeout=5)
assert second.value == "second" and taken.dead
print(groups)

# A leader killed while it waits for company: its item is dropped (and said to be), the lead passes on.
from mail.coalescing import FlushInterrupted
dropped, windowed = [], []
def flush_windowed(items):
    windowed.append(list(items))
    return items
coalescer = Coalescer(flush_windowed, max_weight=10, window_seconds=0.5, dropped=dropped.append)
leader = gevent.spawn(coalescer.submit, "killed in its window")
gevent.sleep(0.05)
follower = gevent.spawn(coalescer.submit, "follower")
gevent.sleep(0.05)
leader.kill()
follower.join(timeout=5)
assert follower.value == "follower", follower.exception
assert dropped == ["killed in its window"] and windowed == [["follower"]], (dropped, windowed)

# A leader killed mid-flush: the others of its group hear FlushInterrupted, not the leader's kill.
gate = gevent.event.Event()
def flush_held(items):
    gate.wait()
    return items
coalescer = Coalescer(flush_held, max_weight=10, window_seconds=0.2)
leader = gevent.spawn(coalescer.submit, "leader")
gevent.sleep(0.05)
member = gevent.spawn(coalescer.submit, "member")
gevent.sleep(0.3)  # the window is over: both are in the flush, which waits at the gate
leader.kill()
member.join(timeout=5)
assert isinstance(member.exception, FlushInterrupted), member.exception
gate.set()
assert coalescer.submit("after") == "after"
print("killed leaders ok")
"""


def test_under_gevent_callers_and_leaders_killed_at_each_step_leave_no_one_waiting(tmp_path):
    # A process of its own, patched as the API's workers are (mail/management/commands/serve.py).
    script = tmp_path / "coalesce_gevent.py"
    script.write_text(GEVENT_SCRIPT)
    done = subprocess.run([sys.executable, "-m", "gevent.monkey", str(script)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["[['first'], ['second', 'taken']]", "killed leaders ok"]
