"""Recipe instances and runs: planning, submission, the run lifecycle, catalog and tickets."""
