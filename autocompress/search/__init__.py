"""search layer (see docs/architecture.md)."""
