"""Shared fixtures: moto-backed AWS for integration tests, seeded synthetic frames."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.pop("AWS_ENDPOINT_URL", None)
# One scratch folder per test process for what the stacks and jobs leave (side logs, job folders, sockets) and
# for `obsflow local serve`'s state (under the user's data directory: never the real one in tests); removed when
# the process ends, so that test runs do not pile folders up in /tmp.
_SCRATCH = tempfile.mkdtemp(prefix="obsflow-tests-")
os.environ["XDG_DATA_HOME"] = os.path.join(_SCRATCH, "data")
os.environ["TMPDIR"] = tempfile.tempdir = _SCRATCH
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


@pytest.fixture(scope="session")
def small_candidate():
    """One candidate for the frame-census recipe: 2 darks, 2 gains, 4 observe frames of 32x32 (seeded)."""
    from obsflow.simulate import simulate_candidate

    return simulate_candidate("cand_small", n_dark=2, n_gain=2, n_observe=4, shape=(32, 32), seed=1,
                              recipe="frame-census")
