"""The spacy-transformers NER student: backbone resolution and training."""
