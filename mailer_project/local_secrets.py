"""What the settings need to tell a local run from a reachable one, and the local run's own
secret key (mailer_project/settings.py, "Secret key and binding beyond loopback")."""

import ipaddress
import os
import secrets
from pathlib import Path


def binds_beyond_loopback(bind_address: str) -> bool:
    """Whether gunicorn's --bind value lets other machines connect: anything but a loopback
    address, `localhost` or a unix socket. An address we cannot read counts as reachable."""
    if bind_address.startswith("unix:"):
        return False
    host = bind_address.rsplit(":", 1)[0] if bind_address.count(":") == 1 or "]" in bind_address else bind_address
    host = host.strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def local_secret_key(path: Path) -> str:
    """This machine's random key in `path`, made on first use (mode 0600). Written to a temporary
    file and linked into place, so processes starting together agree on one key."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(50))
    try:
        os.link(temporary, path)  # fails if another process got there first: its key wins
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()
