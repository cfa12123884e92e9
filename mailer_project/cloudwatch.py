"""CloudWatch Logs for the service's JSON log lines (when CLOUDWATCH_LOG_GROUP is set).

watchtower batches records in a queue per stream and sends them from a background thread. Two
things it does not do for us:

- fork safety of the AWS client. watchtower already resets its queues and threads in a forked
  child (logging's at-fork hook), but would keep the boto3 client, whose connection pool the
  child would then share with its parent. The client here belongs to the process that made it:
  a forked child (a prefork pool's worker, anything else that forks) makes its own on first use.
- stream names per process. Each process writes its own stream, so none interleave and the
  stream says which host and process a line came from.

Flushing: logging's atexit hook flushes and closes the handler on a normal exit (gunicorn
workers, the Celery worker with the threads pool); mailer_project.celery flushes it when a pool
process shuts down, since those leave through os._exit. In the gevent pool's worker, queue.Queue
is gevent's, which has no `all_tasks_done` for watchtower's flush and close to wait on: they
raised AttributeError there and the worker's last lines (the sends it finished while stopping)
never reached CloudWatch. Found by the image tests (tests/image/test_roles.py); waiting is done
here in the way each kind of queue allows.
"""

from __future__ import annotations

import logging
import os
import warnings

import boto3
import watchtower
from botocore.config import Config

# How long a record may wait in the batch; CloudWatch Logs takes 5 PutLogEvents a second per
# stream, far above one batch every few seconds from each process.
SEND_INTERVAL_SECONDS = 5


class CloudWatchHandler(watchtower.CloudWatchLogHandler):
    def __init__(self, log_group_name: str, region_name: str, **kwargs):
        self._region_name = region_name
        self._client = None
        self._client_pid = None
        super().__init__(
            log_group_name=log_group_name,
            log_stream_name="mailer/{machine_name}/{process_id}",
            send_interval=SEND_INTERVAL_SECONDS,
            # The group is the deployment's (deploy/cloudformation.yml, with its retention); the
            # task role may write to it and need not be allowed to create groups.
            create_log_group=False,
            boto3_client=self._new_client(),
            **kwargs,
        )

    def _new_client(self):
        # Bounded, like every AWS call of the service: a slow CloudWatch delays a batch, never a request.
        config = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3})
        return boto3.client("logs", region_name=self._region_name, config=config)

    @property
    def cwl_client(self):
        if self._client_pid != os.getpid():
            self._client, self._client_pid = self._new_client(), os.getpid()
        return self._client

    @cwl_client.setter
    def cwl_client(self, client):
        self._client, self._client_pid = client, os.getpid()

    # watchtower's flush() and close(), but for the wait on each queue (see the module's docstring).
    def flush(self):
        self.addFilter(watchtower._boto_filter)
        if self.shutting_down:
            return
        for q in self.queues.values():
            q.put(self.FLUSH)
        for q in self.queues.values():
            self._wait_until_sent(q)

    def close(self):
        self.addFilter(watchtower._boto_filter)
        if self.shutting_down:
            return
        self.shutting_down = True
        for q in self.queues.values():
            q.put(self.END)
        for q in self.queues.values():
            self._wait_until_sent(q)
            if not q.empty():
                warnings.warn("Timed out while delivering logs", watchtower.WatchtowerWarning, stacklevel=2)
        logging.Handler.close(self)

    def _wait_until_sent(self, q) -> None:
        if hasattr(q, "all_tasks_done"):  # the standard library's queue
            with q.all_tasks_done:
                q.all_tasks_done.wait_for(lambda: q.unfinished_tasks == 0, timeout=self.FLUSH_TIMEOUT)
        else:  # gevent's, where the worker's gevent pool has patched queue.Queue
            q.join(timeout=self.FLUSH_TIMEOUT)
