import sys

try:
    from obsflow_tasks.runtime import main
except ImportError as exc:  # a broken image or environment, not the science: an infrastructure failure (exit 3)
    print(f"obsflow_tasks cannot start: {type(exc).__name__}: {exc} (python {sys.executable}; the task image or "
          "environment is broken: rebuild it, then redrive the run)", file=sys.stderr)
    sys.exit(3)

sys.exit(main())
