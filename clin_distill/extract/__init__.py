"""Batch extraction over a user's notes (`clin-distill extract`): reading, the pipeline, output."""
