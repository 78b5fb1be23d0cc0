"""Scripts obsflow runs with a pipeline's own Python, in the pipeline's environment: they import nothing of
obsflow's (it is not installed there), only the pipeline's framework and the standard library."""
