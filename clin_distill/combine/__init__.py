"""Combine teachers' span groups into one set of non-overlapping entities."""
