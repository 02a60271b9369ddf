"""gdsynth.review (see docs/architecture.md)."""
