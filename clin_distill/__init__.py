"""Distil LLM and ontology teachers into a fast spaCy NER student for clinical notes."""

__version__ = "0.1.0"
