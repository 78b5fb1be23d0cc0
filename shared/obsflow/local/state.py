"""The local stack's state on disk (`obsflow local serve --state-dir DIR`).

moto keeps everything in memory. Here its service backends (objects and their versions,
table items, queued messages, topics and subscriptions, parameters, roles, state machines
and their executions' history, task logs) are pickled to ``DIR/state.pickle`` every few
seconds and when the stack stops, and put back when it starts again. Not kept, because the
stack makes them again at every start from the code: Lambda functions, Batch queues and job
definitions. A Batch job does not outlive the process that ran it.

Loading a pickle runs whatever code it names, so the state is loaded only from a directory and a file of the
user's own that no other user may change (obsflow.local.private), and both are private (0700, 0600): they hold
every object's body. A state that cannot be read stops the stack with one line saying what to do; nothing is
deleted.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import pickle
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from obsflow.errors import ObsflowError
from obsflow.local.private import private_directory, private_file

KEPT_SERVICES = ("s3", "dynamodb", "sqs", "sns", "ssm", "iam", "stepfunctions", "logs")
SNAPSHOT_INTERVAL_S = 5.0
FILE_NAME = "state.pickle"
FORMAT = 2
_LOADED_AS_CODE = ", and the state in it is loaded as code"
_LOCKS = (type(threading.Lock()), type(threading.RLock()))


class UnusableState(ObsflowError, RuntimeError):
    """A saved state this release cannot load, and what to do (a RuntimeError: `local serve` says it in one line)."""


def _tags_of_a_resource() -> defaultdict:
    return defaultdict(dict)


def _defaultdict(cls, factory, items: dict, attributes: dict) -> defaultdict:
    made = cls.__new__(cls)
    defaultdict.__init__(made, factory)
    made.update(items)
    if attributes:
        made.__dict__.update(attributes)
    return made


def _plain_dict_subclass(cls, items: dict, attributes: dict) -> dict:
    made = cls.__new__(cls)
    dict.update(made, items)
    made.__dict__.update(attributes)
    return made


class _Pickler(pickle.Pickler):
    """moto's backends with what pickle cannot take made anew: locks and conditions (fresh ones, as at
    start), S3's versioned key stores with all their versions, defaultdicts rebuilt without calling their
    subclass's __init__ (SSM's ParameterDict), and SSM's tag dictionary (a lambda factory) with a named one."""

    def reducer_override(self, obj):
        if isinstance(obj, _LOCKS):
            return threading.RLock if isinstance(obj, _LOCKS[1]) else threading.Lock, ()
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if type(obj).__name__ == "_VersionedKeyStore":  # S3's keys: each a list of versions, which its
            # items() hides (it gives the latest alone); stored as they are, every version kept
            return _plain_dict_subclass, (type(obj), dict(dict.items(obj)), obj.__dict__)
        if isinstance(obj, defaultdict):
            factory = obj.default_factory
            if getattr(factory, "__name__", "") == "<lambda>":
                factory = _tags_of_a_resource
            return _defaultdict, (type(obj), factory, dict(obj), getattr(obj, "__dict__", {}))
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
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    # With execute_state_machine on, moto keeps state machines and executions in the parser's backend.
    return {**{service: get_backend(service) for service in KEPT_SERVICES},
            "stepfunctions-parser": stepfunctions_parser_backends}


class StateDirectory:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self._lock = threading.Lock()
        self._prepared = False
        self._snapshot: dict | None = None

    def prepare(self) -> None:
        """Make the directory private, or refuse it, and read what was saved: the stack does this before it starts
        anything, so a state it cannot use stops it there, with one line, and nothing changed."""
        self._private_directory()
        self._snapshot = self._load()
        self._prepared = True

    def _private_directory(self) -> None:
        private_directory(self.directory, "state directory", why=_LOADED_AS_CODE,
                          instead="use a directory of your own that only you can write to (--state-dir DIR)")

    def _load(self) -> dict | None:
        try:
            descriptor = private_file(self.path, os.O_RDONLY, "state file", why=_LOADED_AS_CODE,
                                      instead="move it away to start empty")
        except FileNotFoundError:
            return None

        def unreadable(reason: str) -> UnusableState:
            return UnusableState(f"state file {self.path} is unreadable ({reason}): move it away to start empty, or "
                                 "put back a copy of it")

        with open(descriptor, "rb") as saved:
            try:
                snapshot = pickle.load(saved)
            except Exception as exc:  # noqa: BLE001  (truncated, not a pickle, or naming what this release lacks)
                raise unreadable(f"{type(exc).__name__}: truncated?") from exc
        if not isinstance(snapshot, dict):
            raise unreadable("not a state obsflow saved")
        if snapshot.get("format") != FORMAT:
            raise UnusableState(f"{self.path} was written by another obsflow release (format "
                                f"{snapshot.get('format')}, this one reads {FORMAT}): move it away to start empty")
        return snapshot

    def restore(self) -> Restored | None:
        """Put the saved backends in place (before any resource is created); None when nothing was saved."""
        if not self._prepared:
            self.prepare()
        snapshot, self._snapshot = self._snapshot, None
        if snapshot is None:
            return None
        live = _backend_dicts()
        for service, backends in live.items():
            for account, regions in snapshot["backends"].get(service, {}).items():
                for region, backend in regions.items():
                    backends[account][region] = backend
        # S3 finds a bucket's owner in a table beside its backends (a name is global across accounts)
        live["s3"].bucket_accounts.update(snapshot["s3_bucket_accounts"])
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
            if not self.directory.is_dir():
                self._private_directory()
            # a new file only its user can read (0600), beside the state, never through a link; then in its place
            descriptor, partial = tempfile.mkstemp(prefix="state.", suffix=".partial", dir=self.directory)
            try:
                with open(descriptor, "wb") as written:
                    written.write(payload)
                os.replace(partial, self.path)
            except BaseException:
                os.unlink(partial)
                raise

    def _pickled(self, clean: bool) -> bytes:
        live = _backend_dicts()
        backends = {
            service: {account: dict(dict.items(regions)) for account, regions in dict.items(backend_dict)}
            for service, backend_dict in live.items()
        }
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({
            "format": FORMAT, "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "clean": clean, "backends": backends, "s3_bucket_accounts": dict(live["s3"].bucket_accounts),
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


def _parameter_name(stage: str) -> str:
    return f"/obsflow/{stage}/local-stack"


def record_start(settings, session, state: StateDirectory | None, restored: Restored | None) -> None:
    """What a client may need to know about this local stack's state: when it started, and from what."""
    ssm = session.client("ssm", region_name=settings.region, endpoint_url=settings.endpoint_url)
    ssm.put_parameter(Name=_parameter_name(settings.stage), Type="String", Overwrite=True, Value=json.dumps({
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "state_dir": str(state.directory) if state else None,
        "restored": restored.describe() if restored else None,
    }))


def empty_stack_note(settings, ssm) -> str | None:
    """For a user who looks for something on a local stack that started without saved state: why it is not there."""
    try:
        started = json.loads(ssm.get_parameter(Name=_parameter_name(settings.stage))["Parameter"]["Value"])
    except Exception:  # noqa: BLE001  (no note is better than a second error)
        return None
    if started.get("restored"):
        return f"This local stack {started['restored']}."
    if started.get("state_dir"):
        return (f"This local stack started at {started['started_at']} with nothing saved yet in "
                f"{started['state_dir']}.")
    return (f"This local stack started at {started['started_at']} empty, without saved state: what an earlier "
            "stack held ended with it. `obsflow local serve --state-dir DIR` keeps it across restarts.")
