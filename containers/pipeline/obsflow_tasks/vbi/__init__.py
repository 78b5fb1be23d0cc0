"""vbi-l1: the reference Level 0 -> Level 1 recipe for a VBI-like imager."""
