"""Re-export: report rows live in :mod:`autocompress.core.trial_rows` (report and export
both judge trials by them)."""

from autocompress.core.trial_rows import TrialRow, make_row, summarize_bits, summarize_pruning

__all__ = ["TrialRow", "make_row", "summarize_bits", "summarize_pruning"]
