"""Tests for gdsynth.training."""
