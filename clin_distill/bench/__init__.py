"""Speed, memory and cost measurements of the student (`weasel run benchmark`, `benchmark-gpu`).

Imports nothing itself: the GPU half (`bench.gpu.run_bundle`) runs where only torch and
transformers are installed.
"""
