"""edgekit.compress"""
