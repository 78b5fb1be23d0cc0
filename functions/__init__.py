"""Lambda entry points: one thin handler per function."""
