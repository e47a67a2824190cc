"""Placeholder: the cnn family (being written)."""
