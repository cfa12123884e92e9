"""Every provider the service knows, by the name MAIL_PROVIDERS and the admin use.

Adding a provider is its folder (providers/<name>/, see providers/spec.py) and one line in
REGISTRY below. The rest of the service asks the registry: which names exist, how to build one,
what one request may carry across all of them, which settings they read, which webhooks exist."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from . import mailgun, sendgrid, ses
from .base import OutboundMessage
from .http import DEFAULT_CONNECTIONS, Timeouts
from .lookup import Lookup
from .spec import Limits, Provider, ProviderSpec, Setting


class Registry:
    def __init__(self, specs: list[ProviderSpec]):
        self._specs = {spec.name: spec for spec in specs}

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> ProviderSpec | None:
        return self._specs.get(name)

    def build(self, name: str, config: Any, connections: int = DEFAULT_CONNECTIONS) -> Provider:
        """The named provider's client, from a settings-like object (the names as attributes),
        keeping up to `connections` connections alive: one per send in flight, or the sends beyond
        them would each open a connection (a TLS handshake to a real provider) for one request."""
        if name not in self._specs:
            raise KeyError(f"unknown mail provider {name!r}; known: {', '.join(self.names())}")
        timeouts = Timeouts(connect=config.PROVIDER_CONNECT_TIMEOUT, read=config.PROVIDER_READ_TIMEOUT)
        return self._specs[name].build(config, timeouts, connections)

    def build_lookup(self, name: str, config: Any) -> Lookup | None:
        """The named provider's log-API client, or None when it cannot look a message up."""
        spec = self._specs.get(name)
        if spec is None or spec.lookup is None:
            return None
        timeouts = Timeouts(connect=config.PROVIDER_CONNECT_TIMEOUT, read=config.PROVIDER_READ_TIMEOUT)
        return spec.lookup(config, timeouts)

    def strictest_limits(self) -> Limits:
        """What every provider takes: a message within these can fail over to any of them."""
        return Limits.strictest([spec.limits for spec in self._specs.values()])

    def check_limits(self, message: OutboundMessage) -> None:
        """Raise the first provider's MessageRejected for a message one of them would refuse."""
        for spec in self._specs.values():
            spec.check_limits(message)

    def settings(self) -> list[Setting]:
        return [setting for spec in self._specs.values() for setting in spec.settings]

    def register(self, spec: ProviderSpec) -> None:
        """One more provider, for this process (before its settings are read, so that they read
        the provider's own). The service's providers are the list below; tests add throwaway ones."""
        if spec.name in self._specs:
            raise ValueError(f"a provider named {spec.name!r} is registered already")
        self._specs[spec.name] = spec

    @contextlib.contextmanager
    def registered(self, spec: ProviderSpec) -> Iterator[ProviderSpec]:
        """One more provider while the block runs."""
        self.register(spec)
        try:
            yield spec
        finally:
            del self._specs[spec.name]


REGISTRY = Registry([sendgrid.SPEC, mailgun.SPEC, ses.SPEC])
