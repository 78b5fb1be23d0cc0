"""moto's server: a request's backend found once per host, not once per request.

For every request moto's dispatcher lists its own package directory (a stat per service) and
then matches the host against hundreds of URL patterns, holding one lock that every request
waits on: a tenth of the local stack's time while a day's frames arrive. The answer depends on
the host alone, so it is kept, for a bounded number of hosts (a client names any host it likes).
"""

from __future__ import annotations

from functools import lru_cache

from moto import backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

KNOWN_HOSTS = 256
moto_backend_for_host = DomainDispatcherApplication.get_backend_for_host


@lru_cache(maxsize=KNOWN_HOSTS)
def backend_of(dispatcher: DomainDispatcherApplication, host: str):
    return moto_backend_for_host(dispatcher, host)


def _backend_for_host(self: DomainDispatcherApplication, host: str | None):
    return None if host is None else backend_of(self, host)


def apply() -> None:
    if DomainDispatcherApplication.get_backend_for_host is not _backend_for_host:
        modules = tuple(backends.list_of_moto_modules())
        backends.list_of_moto_modules = lambda: modules
        DomainDispatcherApplication.get_backend_for_host = _backend_for_host
