"""edgekit.training"""
