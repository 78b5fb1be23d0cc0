import sys

from obsflow_tasks.runtime import main

sys.exit(main())
