"""passes package (see docs/architecture.md)."""
