"""Thin command-line entry points; the work happens in the library packages."""
