"""Firing-regime analysis of trained cognet runs: statistics, figures, reports, comparisons.

``analyze_run(run_dir, source="torch", trials=None)`` is the entry point used by
``cognet analyze`` and ``cognet demo``; ``compare_runs`` backs ``cognet compare``.
"""

from .run import analyze_run

__all__ = ["analyze_run"]
