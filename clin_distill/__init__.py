"""Distil LLM and ontology teachers into a fast spaCy NER student for clinical notes."""

from .labels import LABELS

__all__ = ["LABELS"]
__version__ = "0.1.0"
