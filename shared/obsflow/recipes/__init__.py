"""Recipes: named, versioned DAGs of tasks, their registry and their state machines."""
