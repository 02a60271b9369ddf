"""Tests for gdsynth.data."""
