"""Readers that turn the public corpora into spaCy Docs with gold entities."""
