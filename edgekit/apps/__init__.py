"""Example apps written into bundles (templates as package data)."""
