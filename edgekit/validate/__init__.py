"""edgekit.validate"""
