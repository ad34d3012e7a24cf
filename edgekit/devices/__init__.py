"""edgekit.devices"""
