"""Two versions of a product compared, for the data-quality scientist deciding which to keep: what made them
(provenance), what they measure (QC values) and how their frames' pixels differ."""
