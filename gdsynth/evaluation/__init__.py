"""gdsynth.evaluation (see docs/architecture.md)."""
