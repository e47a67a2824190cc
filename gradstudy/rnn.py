"""Placeholder: the rnn family (being written)."""
