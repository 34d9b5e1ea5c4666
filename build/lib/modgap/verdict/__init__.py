"""The verdict: the runs table and the aggregated tables, what a comparison may rest on, seed-paired
statistics, the paper's numbers and margins, the claims check, the regime map and its calibration, and the
stability of a verdict over seed sets."""
