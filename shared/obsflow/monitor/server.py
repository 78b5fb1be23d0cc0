"""obsflow monitor: a read-only web page of a stage, served on loopback.

Every page is read afresh from the stage's tables, Step Functions and S3 with the
operator's credentials (the same read models as the CLI); nothing is written. A comparison of
two versions (/compare/OLD/NEW) keeps its per-frame results, which never change, between refreshes. Each page
fetches its own content again every few seconds, so a screen left open follows the night.

It has no authentication. It answers only requests addressed to the name it is bound to
(421 otherwise): a page on another site that rebinds its DNS name to this address reaches
the socket, but under its own name, so it cannot read the stage with the operator's credentials.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from obsflow.errors import NotFound
from obsflow.ids import ID_RULE, is_id
from obsflow.monitor import views
from obsflow.monitor.reads import StageNotAnswering, StageReads
from obsflow.observability import logger
from obsflow.runs.context import NotAllowed

_ROUTE = re.compile(r"^/(?:(?P<kind>runs|datasets|campaigns)/(?P<id>[A-Za-z0-9_.:@-]{1,128}))?/?$")
_LISTING = re.compile(r"^/(?P<kind>runs|datasets|catalogue)/?$")
_COMPARE = re.compile(r"^/compare/(?P<a>[^/]{1,200})/(?P<b>[^/]{1,200})/?$")  # ids checked by obsflow.ids
_DOCUMENT = re.compile(r"^/campaigns/(?P<name>[a-z0-9-]{1,48})/documents/(?P<number>[1-9][0-9]{0,3})$")
_JSON = "application/json"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (a name other than localhost may resolve anywhere)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def answered_hosts(host: str, port: int) -> frozenset[str]:
    """The Host headers the monitor answers: its bound name with its port (on loopback, 127.0.0.1 and localhost too)."""
    names = {host.lower(), *(LOOPBACK_NAMES if is_loopback(host) else ())}
    hosts = {f"{name}:{port}" for name in names}
    return frozenset(hosts | names if port == 80 else hosts)  # a browser leaves the default port out


class _Handler(BaseHTTPRequestHandler):
    reads: StageReads
    stage: str
    hosts: frozenset[str]

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        url = urlsplit(self.path)
        fragment = "fragment" in parse_qs(url.query)
        if not self._addressed_to_me():
            self._refuse_misdirected(url.path)
            return
        if url.path == "/api/overview.json":
            self._overview_json()
            return
        if document := _DOCUMENT.match(unquote(url.path)):
            self._document(document.group("name"), int(document.group("number")))
            return
        if compare := _COMPARE.match(unquote(url.path)):
            self._answer(url.path, fragment, lambda: self._comparison(compare.group("a"), compare.group("b")))
            return
        if listing := _LISTING.match(unquote(url.path)):
            kind, given = listing.group("kind"), parse_qs(url.query).get("next", [None])[0]
            self._answer(url.path, fragment, lambda: (views.LISTING_TITLES[kind].lower(),
                                                      views.listing_page(kind, self.reads.listing(kind, given))))
            return
        route = _ROUTE.match(unquote(url.path))
        if route is None:
            self._page(404, "not found", views.not_found(f"no page {url.path}; start from the overview at /"), fragment)
            return
        self._answer(url.path, fragment, lambda: self._routed(route.group("kind"), route.group("id")))

    def _routed(self, kind: str | None, identifier: str | None) -> tuple[str, str]:
        if kind == "runs":
            return f"run {identifier}", views.run_page(*self.reads.run(identifier))
        if kind == "datasets":
            return f"dataset {identifier}", views.dataset_page(*self.reads.dataset(identifier))
        if kind == "campaigns":
            return f"campaign {identifier}", views.campaign_page(self.reads.campaign(identifier))
        return "overview", views.overview(self.reads.overview())

    def _comparison(self, a: str, b: str) -> tuple[str, str]:
        not_ids = [value for value in (a, b) if not is_id(value)]
        if not_ids:  # checked before anything is read
            raise NotFound(f"{not_ids[0]!r} is not a dataset id ({ID_RULE}); the versions of a product are linked "
                           "from its dataset's page")
        return f"{a} and {b} compared", views.compare_page(self.reads.compare(a, b))

    def _answer(self, path: str, fragment: bool, make) -> None:
        """The page ``make`` gives, or one saying what went wrong (the monitor keeps serving)."""
        try:
            title, body = make()
        except NotFound as exc:
            self._page(404, "not found", views.not_found(str(exc)), fragment)
            return
        except StageNotAnswering as exc:
            self._page(503, "stack not answering", views.not_answering(str(exc)), fragment)
            return
        except Exception as exc:  # noqa: BLE001  (the page says what failed; the monitor keeps serving)
            logger.exception("monitor page failed", extra={"path": path})
            self._page(500, "error", views.not_found(f"cannot read the stage: {type(exc).__name__}: {exc}"), fragment)
            return
        self._page(200, title, body, fragment)

    def _addressed_to_me(self) -> bool:
        named = self.headers.get_all("Host") or []
        return len(named) == 1 and named[0].strip().lower() in self.hosts

    def _refuse_misdirected(self, path: str) -> None:
        reason = f"this monitor answers requests for {' or '.join(sorted(self.hosts))} only"
        if path.startswith("/api/"):
            self._send(421, views.api_json({"error": reason}), _JSON)
        else:
            self._send(421, reason + "\n", "text/plain; charset=utf-8")

    def _overview_json(self) -> None:
        try:
            self._send(200, views.api_json(self.reads.overview()), _JSON)
        except StageNotAnswering as exc:
            self._send(503, views.api_json({"error": str(exc)}), _JSON)
        except Exception as exc:  # noqa: BLE001  (a script gets the reason as JSON; the monitor keeps serving)
            logger.exception("monitor API failed", extra={"path": self.path})
            self._send(500, views.api_json({"error": f"cannot read the stage: {type(exc).__name__}: {exc}"}), _JSON)

    def _document(self, campaign: str, number: int) -> None:
        """A campaign's document, as a download: whatever it holds (HTML, SVG, script) never runs as a page of the
        monitor, whose pages read the stage with the operator's credentials."""
        try:
            record, body = self.reads.campaign_document(campaign, number)
        except NotFound as exc:
            self._send(404, str(exc) + "\n", "text/plain; charset=utf-8")
            return
        except StageNotAnswering as exc:
            self._send(503, str(exc) + "\n", "text/plain; charset=utf-8")
            return
        except NotAllowed as exc:  # a record or object not as attach made it: not served
            logger.error("monitor download refused", extra={"path": self.path, "error": str(exc)})
            self._send(409, str(exc).replace("\r", " ").replace("\n", " ") + "\n", "text/plain; charset=utf-8")
            return
        except Exception as exc:  # noqa: BLE001  (the reason, in one line; the monitor keeps serving)
            logger.exception("monitor download failed", extra={"path": self.path})
            self._send(500, f"cannot read the document: {type(exc).__name__}: {exc}\n", "text/plain; charset=utf-8")
            return
        # check_document_name allows no quote, backslash or control character: the name is safe in the header.
        self._send(200, body, "application/octet-stream",
                   {"Content-Disposition": f'attachment; filename="{record["name"]}"', "X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "sandbox"})

    def _page(self, status: int, title: str, body: str, fragment: bool) -> None:
        self._send(status, body if fragment else views.page(title, body, self.stage), "text/html; charset=utf-8")

    def _send(self, status: int, content: str | bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        payload = content.encode() if isinstance(content, str) else content
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (quiet: one line per request is noise)
        pass


class Monitor:
    """The monitor's HTTP server; ``start()`` serves in a background thread, ``serve_forever()`` in this one."""

    def __init__(self, reads: StageReads, stage: str, port: int = 8080, host: str = "127.0.0.1"):
        handler = type("Handler", (_Handler,), {"reads": reads, "stage": stage})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]  # port 0: the one the system chose
        handler.hosts = answered_hosts(host, self.port)

    @property
    def url(self) -> str:  # by the bound name: the address it resolved to is not a name the monitor answers
        return f"http://{self.host}:{self.port}/"

    def start(self) -> "Monitor":
        threading.Thread(target=self.server.serve_forever, name="monitor", daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
