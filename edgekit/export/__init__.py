"""Converters: pure src -> dst functions, one per format, plus the step wrapper."""
