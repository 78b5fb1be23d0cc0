"""The local stack's state on disk (`obsflow local serve --state-dir DIR`).

moto keeps everything in memory. Here its service backends (objects and their versions,
table items, queued messages, topics and subscriptions, parameters, roles, state machines
and their executions' history, task logs) are pickled to ``DIR/state.pickle`` every few
seconds and when the stack stops, and put back when it starts again. Not kept, because the
stack makes them again at every start from the code: Lambda functions, Batch queues and job
definitions. A Batch job does not outlive the process that ran it.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import pickle
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

KEPT_SERVICES = ("s3", "dynamodb", "sqs", "sns", "ssm", "iam", "stepfunctions", "logs")
SNAPSHOT_INTERVAL_S = 5.0
FILE_NAME = "state.pickle"
FORMAT = 1
_LOCKS = (type(threading.Lock()), type(threading.RLock()))


def _nested_tag_dict(items: dict) -> defaultdict:
    tags: defaultdict = defaultdict(lambda: defaultdict(dict))
    tags.update(items)
    return tags


class _Pickler(pickle.Pickler):
    """moto's backends with what cannot be pickled made anew: locks and conditions (fresh ones, as at
    start) and SSM's tag dictionary (a defaultdict whose factory is a lambda)."""

    def reducer_override(self, obj):
        if isinstance(obj, _LOCKS):
            return threading.RLock if isinstance(obj, _LOCKS[1]) else threading.Lock, ()
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if isinstance(obj, defaultdict) and getattr(obj.default_factory, "__name__", "") == "<lambda>":
            return _nested_tag_dict, (dict(obj),)
        return NotImplemented


@dataclass(frozen=True)
class Restored:
    saved_at: str
    clean: bool  # written when the stack stopped (else: the last periodic snapshot before a crash)
    path: str

    def describe(self) -> str:
        if self.clean:
            return f"restored the state saved when the stack stopped at {self.saved_at} from {self.path}"
        return (f"the stack did not stop cleanly: restored the last snapshot, taken at {self.saved_at}, from "
                f"{self.path}. What arrived or changed in the {SNAPSHOT_INTERVAL_S:g} s before the crash may be "
                "missing: upload it again (ingest counts each frame once); runs that were running are failed "
                "with a ticket and can be redriven")


def _backend_dicts():
    from moto.backends import get_backend

    return {service: get_backend(service) for service in KEPT_SERVICES}


class StateDirectory:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self._lock = threading.Lock()

    def restore(self) -> Restored | None:
        """Put the saved backends in place (before any resource is created); None when nothing was saved."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as saved:
            snapshot = pickle.load(saved)
        if snapshot.get("format") != FORMAT:
            raise RuntimeError(f"{self.path} was written by another obsflow release (format "
                               f"{snapshot.get('format')}, this one reads {FORMAT}): move it away to start empty")
        for service, backends in _backend_dicts().items():
            for account, regions in snapshot["backends"].get(service, {}).items():
                for region, backend in regions.items():
                    backends[account][region] = backend
        return Restored(saved_at=snapshot["saved_at"], clean=snapshot["clean"], path=str(self.path))

    def save(self, clean: bool = False) -> None:
        """Pickle every kept backend and replace the saved state at once (a crash mid-write keeps the last one)."""
        with self._lock:
            for _ in range(5):  # a request changing a backend mid-pickle: take it again
                try:
                    payload = self._pickled(clean)
                    break
                except RuntimeError:  # "dictionary changed size during iteration"
                    continue
            else:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            partial.write_bytes(payload)
            os.replace(partial, self.path)

    def _pickled(self, clean: bool) -> bytes:
        backends = {
            service: {account: dict(dict.items(regions)) for account, regions in dict.items(backend_dict)}
            for service, backend_dict in _backend_dicts().items()
        }
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({
            "format": FORMAT, "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "clean": clean, "backends": backends,
        })
        return buffer.getvalue()

    def keep_saving(self, stop: threading.Event) -> None:
        """Save every SNAPSHOT_INTERVAL_S until ``stop``; the stack saves a last, clean one as it stops."""
        while not stop.wait(SNAPSHOT_INTERVAL_S):
            self.save()


def default_state_dir(stage: str) -> Path:
    """Under the user's data directory (XDG_DATA_HOME, else ~/.local/share)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "obsflow" / "local" / stage
