"""obsflow monitor: a read-only web page of a stage, served on loopback.

Every page is read afresh from the stage's tables, Step Functions and S3 with the
operator's credentials (the same read models as the CLI); nothing is written. Each page
fetches its own content again every few seconds, so a screen left open follows the night.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from obsflow.errors import NotFound
from obsflow.monitor import views
from obsflow.monitor.reads import StageReads
from obsflow.observability import logger

_ROUTE = re.compile(r"^/(?:(?P<kind>runs|datasets)/(?P<id>[A-Za-z0-9_.:@-]{1,128}))?/?$")


class _Handler(BaseHTTPRequestHandler):
    reads: StageReads
    stage: str

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        url = urlsplit(self.path)
        fragment = "fragment" in parse_qs(url.query)
        if url.path == "/api/overview.json":
            self._send(200, json.dumps(self.reads.overview(), default=str), "application/json")
            return
        route = _ROUTE.match(unquote(url.path))
        if route is None:
            self._page(404, "not found", views.not_found(f"no page {url.path}; start from the overview at /"), fragment)
            return
        kind, identifier = route.group("kind"), route.group("id")
        try:
            if kind == "runs":
                title, body = f"run {identifier}", views.run_page(*self.reads.run(identifier))
            elif kind == "datasets":
                title, body = f"dataset {identifier}", views.dataset_page(*self.reads.dataset(identifier))
            else:
                title, body = "overview", views.overview(self.reads.overview())
        except NotFound as exc:
            self._page(404, "not found", views.not_found(str(exc)), fragment)
            return
        except Exception as exc:  # noqa: BLE001  (the page says what failed; the monitor keeps serving)
            logger.exception("monitor page failed", extra={"path": url.path})
            self._page(500, "error", views.not_found(f"cannot read the stage: {type(exc).__name__}: {exc}"), fragment)
            return
        self._page(200, title, body, fragment)

    def _page(self, status: int, title: str, body: str, fragment: bool) -> None:
        self._send(status, body if fragment else views.page(title, body, self.stage), "text/html; charset=utf-8")

    def _send(self, status: int, text: str, content_type: str) -> None:
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
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

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "Monitor":
        threading.Thread(target=self.server.serve_forever, name="monitor", daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
