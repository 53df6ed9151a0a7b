"""Evaluation: systems run over a benchmark set, scored, and summarised (issue #14)."""
