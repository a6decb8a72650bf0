"""Re-export: the run reader lives in :mod:`autocompress.core.run_data` (report and export
both read runs)."""

from autocompress.core.run_data import RunData, load_run

__all__ = ["RunData", "load_run"]
