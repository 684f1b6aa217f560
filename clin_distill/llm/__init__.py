"""LLM teachers through spacy-llm: an OpenAI-compatible endpoint model with a PHI guard and
per-request accounting (`endpoint`, over `transport`: no redirects, no environment proxies, a
wall-clock deadline), the clinical span task (`task`, labels in configs/teachers/llm/labels.yml),
a cache keyed by exact note text (`cache`), the `label-llm` step (`run`, `label`) and the local
llama.cpp server used offline (`server`)."""
