"""What every task process would otherwise load for itself: imported once by a process that
forks task processes (the local stack's job server), never by a task."""

import warnings

import asdf
import av  # noqa: F401
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401
from matplotlib.backends import backend_pdf  # noqa: E402,F401
from dkist_fits_specifications.spec214 import level0  # noqa: E402

from obsflow import aws  # noqa: E402
import obsflow_tasks.census  # noqa: E402,F401
import obsflow_tasks.vbi.summary  # noqa: E402,F401
import obsflow_tasks.vbi.tasks  # noqa: E402,F401

aws.preload("s3")  # every task's client
level0.load_level0_spec214(INSTRUME="VBI")  # cached per instrument; seconds of YAML on first use
with warnings.catch_warnings():  # a task that loads them says so in its own log
    warnings.simplefilter("ignore")
    asdf.get_config().extensions  # noqa: B018  (asdf's entry points, read once)
