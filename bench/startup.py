"""Start-up benchmark: how long a command or a Lambda handler takes before it does anything.

Prints, each as the median of several fresh processes, against a bare `python -c pass`:
  - `obsflow --help` (target 0.3 s);
  - `obsflow runs list` against an idle local stack (target 0.6 s);
  - the import of every Lambda handler (target 0.5 s), and whether it loads astropy;
  - what the ingest handler's first header adds (astropy and the SPEC-0122 validator load then).

    python bench/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from obsflow.local.stack import LocalStack
from obsflow.settings import FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
OBSFLOW = [str(Path(sys.executable).parent / "obsflow")]  # the console script of this virtualenv
HANDLER = ("import sys, importlib.util; spec = importlib.util.spec_from_file_location('handler', sys.argv[1]); "
           "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
           "print('astropy' in sys.modules)")


def timed(command: list[str], repeat: int, env: dict | None = None) -> tuple[float, str]:
    times, output = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
        output = done.stdout
    return statistics.median(times), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per figure")
    args = parser.parse_args()
    baseline, _ = timed([sys.executable, "-c", "pass"], args.repeat)
    print(f"python -c pass (baseline): {baseline:.3f} s")
    help_s, _ = timed([*OBSFLOW, "--help"], args.repeat)
    print(f"obsflow --help:            {help_s:.3f} s (target 0.3 s)")
    with LocalStack(port=0, stage="startup", log_level="ERROR") as stack:
        env = {**os.environ, "AWS_ENDPOINT_URL": stack.endpoint_url, "AWS_ACCESS_KEY_ID": "local",
               "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": stack.settings.region}
        listing, _ = timed([*OBSFLOW, "--stage", "startup", "runs", "list"], args.repeat, env)
    print(f"obsflow runs list (idle):  {listing:.3f} s (target 0.6 s)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), os.environ.get("PYTHONPATH", "")]),
           "POWERTOOLS_METRICS_NAMESPACE": "obsflow", "AWS_DEFAULT_REGION": "us-east-1"}
    for function in FUNCTIONS:
        path = ROOT / "functions" / function.replace("-", "_") / "handler.py"
        seconds, astropy = timed([sys.executable, "-c", HANDLER, str(path)], args.repeat, env)
        print(f"import {function + ' handler:':<26} {seconds:.3f} s (target 0.5 s); astropy loaded: {astropy.strip()}")
    deferred, _ = timed([sys.executable, "-c", "import astropy.io.fits, dkist_header_validator"], args.repeat, env)
    print(f"the ingest handler's first header loads astropy and the SPEC-0122 validator: "
          f"+{deferred - baseline:.3f} s, once per Lambda instance")


if __name__ == "__main__":
    main()
