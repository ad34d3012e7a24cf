"""Images in, tensors out: decoding, preprocessing, sample photos."""
