"""gdsynth.inference (see docs/architecture.md)."""
