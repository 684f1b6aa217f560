"""LLM teachers through spacy-llm: an OpenAI-compatible endpoint model with a PHI guard and
per-request accounting, the clinical span task, and the local llama.cpp server used offline."""
