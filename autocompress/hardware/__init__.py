"""hardware layer (see docs/architecture.md)."""
