"""obsflow's task runtime: what every Batch job of a recipe runs (`python -m obsflow_tasks`)."""
