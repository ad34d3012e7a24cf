"""Placeholder: filled in by the architecture work."""
