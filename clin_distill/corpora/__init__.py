"""Readers that turn the public corpora into spaCy Docs with gold entities."""

from .align import Mention, set_gold_spans
from .stats import CorpusStats

__all__ = ["CorpusStats", "Mention", "set_gold_spans"]
