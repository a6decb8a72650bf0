"""recover layer: recovery training of a picked trial (beside export; docs/architecture.md)."""
