"""Tests for gdsynth.models."""
