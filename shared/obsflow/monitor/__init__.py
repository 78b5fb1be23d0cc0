"""obsflow monitor: a read-only web page of a stage."""
