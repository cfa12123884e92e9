"""Group commit for the callers of one process: whoever asks while a flush is under way waits, and
the next flush takes everything that piled up meanwhile, in one go.

Accepting mail is mostly waiting: a transaction in PostgreSQL and a publish to SQS, each a round
trip whose fixed cost (BEGIN/COMMIT, an HTTPS request signed by botocore) dwarfs the work per
message. Concurrent accepts in one API worker (gevent's greenlets, or threads) therefore hand their
messages to a Coalescer, and one flush writes all their rows in one transaction and publishes all
their tasks with SendMessageBatch (mail/accept_flush.py), the way Amazon's buffered SQS client batches.

No thread of its own and no timer: the first caller to find no flush under way leads. It waits
`window_seconds` (0: not at all) for company if the last flush had company, flushes what is
waiting, hands each caller its own result, and passes the lead to the oldest caller still waiting,
if any. Alone, a caller flushes its own item at once: a quiet worker does not wait for company that
is not coming (the first caller of a burst goes alone, and those arriving meanwhile form the next
group, which then waits the window). Under load the groups grow with the window and with the time
each flush takes (callers arriving during one wait for the next). Only the standard library's locks
and events, which gevent's monkey-patching makes cooperative.

A flush returns one result per item, in order; a result that is an exception is raised in that
item's caller (mail/accepting.py answers each request for its own messages). A flush that raises
reaches every caller of its group, and the lead still passes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class FlushInterrupted(Exception):
    """The flush that had a caller's item was cut short (its leader killed): what it wrote or
    published may stand, and nothing says how much."""


@dataclass(eq=False)
class _Ticket(Generic[Item]):
    item: Item
    weight: int
    answered: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # woken to lead the next flush, not with a result
    result: Any = None


class Coalescer(Generic[Item]):
    def __init__(
        self,
        flush: Callable[[list[Item]], list[Any]],
        *,
        max_weight: int,
        window_seconds: float = 0.0,
        weigh: Callable[[Item], int] = lambda item: 1,
        dropped: Callable[[Item], None] = lambda item: None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._flush = flush
        self._dropped = dropped  # told of an item whose caller went before any flush took it
        self._max_weight = max_weight
        self._window_seconds = window_seconds
        self._weigh = weigh
        self._sleep = sleep
        self._lock = threading.Lock()  # held only for list bookkeeping, never across a flush
        self._waiting: list[_Ticket[Item]] = []
        self._leader_busy = False
        self._last_had_company = True  # until a flush says otherwise: a new process may start busy

    def submit(self, item: Item) -> Any:
        """The flush's result for this item, once a flush has taken it (raised if an exception)."""
        ticket = _Ticket(item, max(1, self._weigh(item)))
        with self._lock:
            self._waiting.append(ticket)
            ticket.leads = not self._leader_busy
            self._leader_busy = True
        if not ticket.leads:
            try:
                ticket.answered.wait()
            except BaseException:  # killed while waiting (a timeout, the worker stopping)
                if not self._abandon(ticket):
                    # A flush has its item already: the caller hears nothing, but the caller's
                    # cleanup must not undo what the flush does, so it waits for the flush to end.
                    ticket.answered.wait()
                raise
        if ticket.leads:
            # A leader's own ticket is first in line: a new leader found nobody waiting, and a
            # handed-on lead goes to the oldest waiting ticket.
            self._lead(ticket)
        if isinstance(ticket.result, BaseException):
            raise ticket.result
        return ticket.result

    def waiting(self) -> int:
        """How many callers wait for a flush, besides any flush under way (for tests and metrics)."""
        with self._lock:
            return len(self._waiting)

    def _lead(self, own: _Ticket[Item]) -> None:
        if self._window_seconds > 0 and self._last_had_company:
            try:
                self._sleep(self._window_seconds)
            except BaseException:  # killed while it waited for company: nothing taken yet
                self._abandon(own)
                raise
        with self._lock:
            group = self._take_group()
            self._last_had_company = len(group) > 1
        try:
            results = self._flush([ticket.item for ticket in group])
            if len(results) != len(group):
                raise RuntimeError(f"a flush of {len(group)} items returned {len(results)} results")
        except Exception as failure:
            results = [failure] * len(group)
        except BaseException as failure:  # the leader killed mid-flush: no caller may wait forever
            # The kill is the leader's own; the others hear that their flush was cut short (what
            # it had done stands: housekeeping settles rows left queued without a task).
            cut_short = FlushInterrupted(f"the flush that had this request was cut short: {failure!r}")
            results = [failure if ticket is own else cut_short for ticket in group]
        finally:
            self._pass_lead()
        for ticket, result in zip(group, results, strict=True):
            ticket.result = result
            ticket.answered.set()

    def _pass_lead(self) -> None:
        """The oldest waiting caller leads the next flush; with nobody waiting, the next to come."""
        with self._lock:
            follower = self._waiting[0] if self._waiting else None
            self._leader_busy = follower is not None
            if follower is not None:
                follower.leads = True
        if follower is not None:
            follower.answered.set()

    def _abandon(self, ticket: _Ticket[Item]) -> bool:
        """Drop the item of a caller gone before any flush took it (nothing of it was written);
        a lead handed to it goes on to the next in line. False if a flush has taken it."""
        with self._lock:
            if ticket not in self._waiting:
                return False
            self._waiting.remove(ticket)
            handed_lead = ticket.leads
        if handed_lead:
            self._pass_lead()
        self._dropped(ticket.item)
        return True

    def _take_group(self) -> list[_Ticket[Item]]:
        """The oldest waiting tickets up to max_weight (always at least one: a heavy item goes alone)."""
        group, weight = [], 0
        while self._waiting and (not group or weight + self._waiting[0].weight <= self._max_weight):
            ticket = self._waiting.pop(0)
            group.append(ticket)
            weight += ticket.weight
        return group
