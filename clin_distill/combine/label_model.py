"""The label-model strategy: skweak's HMM aggregator (Lison et al. 2020) over the teachers' span
groups, one label at a time, fitted without gold labels on the documents it labels.

skweak reads every span group of a doc as a labelling source; the subset's spans of the label go
into temporary groups and every other group (the gold one included) gets weight 0, so the model
sees only what the subset says about the label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from skweak.generative import HMM
from spacy.tokens import Doc, Span

PREFIX = "lm:"
OUTPUT = "lm:__out__"
N_ITER = 5  # EM converges within 4-5 iterations on our dev sets (log-likelihood gain < 0.01)


class FastHMM(HMM):
    """skweak's HMM with its one-hot encoding vectorised (the library loops over tokens in Python:
    half of the fit time); same matrices, same result."""

    def to_one_hots(self, obs):  # noqa: ANN001, ANN201 - skweak's signature
        out = {}
        for source in obs.columns:
            vector = obs[source].values
            matrix = np.zeros((vector.size, len(self.observed_labels)), dtype=bool)
            rows = np.nonzero(vector >= 0)[0]
            matrix[rows, vector[rows]] = True
            out[source] = matrix
        return out


def label_model(docs: Sequence[Doc], label: str, teachers: Sequence[str]) -> list[list[Span]]:
    """Per doc, the spans of `label` the HMM infers from `teachers`' spans of that label."""
    logging.getLogger("skweak").setLevel(logging.WARNING)
    weights: dict[str, float] = {}
    for doc in docs:
        for key in list(doc.spans):
            weights.setdefault(key, 0.0)
        for t in teachers:
            doc.spans[PREFIX + t] = [s for s in doc.spans.get(t, []) if s.label_ == label]
    weights.update({PREFIX + t: 1.0 for t in teachers})
    model = FastHMM(OUTPUT, [label], initial_weights=weights)
    out: list[list[Span]] = []
    try:
        if any(len(d.spans[PREFIX + t]) for d in docs for t in teachers):
            _quiet(model.fit, list(docs), n_iter=N_ITER)
            for doc in docs:
                model(doc)
                out.append([Span(doc, s.start, s.end, label=label) for s in doc.spans[OUTPUT]])
        else:
            out = [[] for _ in docs]
    finally:
        for doc in docs:
            for key in [k for k in doc.spans if k.startswith(PREFIX)]:
                del doc.spans[key]
    return out


def _quiet(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    """skweak prints each EM iteration to stdout and stderr; the step's own lines are enough."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)
