"""Evaluation harness (``imagerag eval``, docs/evaluation.md): benchmark sets, runs, scores, statistics.

Light at import: each module imports what it needs when used. ``sets`` reads and builds benchmark
set files, ``systems`` turns a profile plus overrides into a hashed system, ``runner`` runs the
generations and the scorers with a resumable cache, ``stats`` computes the summary, ``results``
writes results.md / results.html from it and ``compare`` puts two result folders side by side.
"""
