"""The embedded SQS-, S3- and CloudWatch-Logs-compatible server (moto's) of the local run and the
tests, without werkzeug's access-log line for every request: a worker's long polls alone make
several a second. Errors still show. Same arguments as `python -m moto.server`."""

import logging

from moto import server


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server.main(argv)


if __name__ == "__main__":
    main()
