"""gdsynth.explain (see docs/architecture.md)."""
