"""edgekit.bench"""
