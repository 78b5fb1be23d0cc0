"""What only its user may read or change: the local stack's state directory and its log folder.

Each directory is made 0700 and each file 0600 (the state holds every object's body), or checked when it is
there: a directory or file that is a symbolic link, belongs to another user, or that other users may write to is
refused with one line saying what to do, and one that others may only read is made private. Files are opened
without following a symbolic link, so a link planted where one is made is never written through.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from obsflow.errors import ObsflowError

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # never through a link; never waiting on a FIFO


class NotPrivate(ObsflowError, RuntimeError):
    """A directory or file the local stack will not use, and what to do instead. A RuntimeError, as every reason
    the stack cannot start: `obsflow local serve` says it in one line."""


def _checked(status: os.stat_result, what: str, path, why: str, instead: str, private_mode: int) -> None:
    """Refuse what another user owns or may write to; make private what others may only read."""
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid != os.geteuid():
        raise NotPrivate(f"{what} {path} belongs to another user (uid {status.st_uid}){why}: {instead}")
    if mode & 0o022:
        held = "all it holds is" if private_mode == 0o700 else "it is"
        raise NotPrivate(f"{what} {path} is writable by other users (mode {mode:04o}){why}: "
                         f"`chmod {private_mode:o} {path}` if {held} yours; else {instead}")


def private_directory(path: Path, what: str, instead: str, why: str = "") -> None:
    """Make ``path`` (0700, its parents as usual) or check the directory there (see the module's docstring).
    ``why``: what is at stake, after a comma; ``instead``: what to do when it is refused."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise NotPrivate(f"cannot make {what} {path}: {exc.strerror}: {instead}") from exc
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise NotPrivate(f"cannot open {what} {path}: {exc.strerror}: {instead}") from exc
        found = "a symbolic link" if path.is_symlink() else "not a directory"
        raise NotPrivate(f"{what} {path} is {found}{why}: {instead}") from exc
    try:
        status = os.fstat(descriptor)
        _checked(status, what, path, why, instead, 0o700)
        if stat.S_IMODE(status.st_mode) != 0o700:
            os.fchmod(descriptor, 0o700)
    finally:
        os.close(descriptor)


def private_file(path: Path, flags: int, what: str, instead: str, why: str = "") -> int:
    """Open ``path`` (made 0600 with ``os.O_CREAT`` in ``flags``) never through a symbolic link, checked as
    ``private_directory`` checks a directory: its descriptor. FileNotFoundError when it is not there."""
    try:
        descriptor = os.open(path, flags | _OPEN_FLAGS, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotPrivate(f"{what} {path} is a symbolic link{why}: {instead}") from exc
        if exc.errno in (errno.EISDIR, errno.ENXIO):  # a directory, a FIFO or a socket
            raise NotPrivate(f"{what} {path} is not a regular file{why}: {instead}") from exc
        raise
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotPrivate(f"{what} {path} is not a regular file{why}: {instead}")
        _checked(status, what, path, why, instead, 0o600)
        if stat.S_IMODE(status.st_mode) != 0o600:
            os.fchmod(descriptor, 0o600)
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor
