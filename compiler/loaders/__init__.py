"""Format loaders: bytes in, JSON-compatible data plus source positions out."""
