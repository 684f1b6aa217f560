"""The label-model strategy: skweak's HMM aggregator (Lison et al. 2020) over the teachers' span
groups, one label at a time, fitted without gold labels on the documents it labels.

skweak reads every span group of a doc as a labelling source; the subset's spans of the label go
into temporary groups and every other group (the gold one included) gets weight 0, so the model
sees only what the subset says about the label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import hmmlearn.base
import numpy as np
import pandas
from skweak.generative import HMM
from skweak.voting import MajorityVoterMixin
from spacy.tokens import Doc, Span

PREFIX = "lm:"
OUTPUT = "lm:__out__"
N_ITER = 5  # EM converges within 4-5 iterations on our dev sets (log-likelihood gain < 0.01)


def _votes(values: np.ndarray, n_labels: int, weights: np.ndarray | None = None) -> np.ndarray:
    """skweak's per-row `np.bincount(x[x >= 0], weights=...)` for a whole observation matrix at once.
    Weights are added source by source in column order, as bincount adds them, so the sums are
    bit-identical (skweak's tables give every token a value for every source: 0, "O", where the
    source is silent)."""
    counts = np.zeros((values.shape[0], n_labels), dtype=np.int64 if weights is None else np.float64)
    for s in range(values.shape[1]):
        column = values[:, s]
        rows = np.nonzero(column >= 0)[0]
        counts[rows, column[rows]] += 1 if weights is None else float(weights[s])
    return counts


class FastMajorityVoter(MajorityVoterMixin):
    """skweak's majority voter with the vote count vectorised (`_votes`); the rest is its own."""

    def aggregate(self, obs: pandas.DataFrame) -> pandas.DataFrame:
        weights = np.array([self.weights.get(source, 1) for source in obs.columns])
        label_votes = _votes(obs.values, len(self.observed_labels), weights).astype(np.float32)
        if self.observed_labels[0] == "O":
            label_votes = self.normalise_o_labels(label_votes)
        out_label_votes = label_votes.dot(self._get_vote_matrix())
        total = np.expand_dims(out_label_votes.sum(axis=1), axis=1)
        return pandas.DataFrame(out_label_votes / (total + 1e-30), index=obs.index, columns=self.out_labels)


class FastHMM(HMM):
    """skweak's HMM with its per-token Python loops vectorised: the one-hot encoding, the vote
    counts of the majority-vote start and of the observation filter, and the transition counts.
    They took most of the fit time (cProfile of `combine`: 2 million calls each of the vote count
    and of `np.outer`). Same matrices, bit for bit, so the same spans."""

    def to_one_hots(self, obs):  # noqa: ANN001, ANN201 - skweak's signature
        out = {}
        for source in obs.columns:
            vector = obs[source].values
            matrix = np.zeros((vector.size, len(self.observed_labels)), dtype=bool)
            rows = np.nonzero(vector >= 0)[0]
            matrix[rows, vector[rows]] = True
            out[source] = matrix
        return out

    def _fit(self, all_obs, cutoff=None, n_iter=4, tol=1e-2):  # noqa: ANN001, ANN202 - skweak's signature
        """skweak's `GenerativeModelMixin._fit` with each document's one-hot observations built
        once instead of at every EM iteration (they do not change between iterations)."""
        all_obs = [
            obs for i, obs in enumerate(all_obs) if len(obs.columns) > 0 and (cutoff is None or i <= cutoff)
        ]
        sources = {source for obs in all_obs for source in obs.columns}
        if len(sources) == 0:
            raise RuntimeError("No document found with annotations")
        self._reset_counts(sources)
        self._add_mv_counts(all_obs)
        self._do_mstep_latent()
        self._do_mstep_emissions()
        all_one_hots = [self.to_one_hots(obs) for obs in all_obs]
        monitor = hmmlearn.base.ConvergenceMonitor(tol, n_iter, False)
        monitor._reset()
        for _ in range(n_iter):
            curr_logprob = 0
            self._reset_counts(sources)
            for one_hots in all_one_hots:
                curr_logprob += self._accumulate_statistics(one_hots)
            self._do_mstep_latent()
            self._do_mstep_emissions()
            monitor.report(curr_logprob)
            if monitor.converged:
                break
        return self

    def filter_observations(self, obs: pandas.DataFrame) -> pandas.DataFrame:
        label_votes = _votes(obs.values, len(self.observed_labels)).astype(np.float32)
        return obs[label_votes.dot(self._get_vote_matrix()).sum(axis=1) > 0.0]

    def _add_mv_counts(self, all_obs):  # noqa: ANN001 - skweak's signature
        """skweak's `HMM._add_mv_counts`, with the majority voter above and the transition counts
        summed in one sequential `np.cumsum` (the order of the library's `+=` per token)."""
        init_mv_weights = {
            source: self.initial_weights.get(source, 1)
            * np.exp(-self.redundancy_factor * len([s2 for s1, s2 in self.corr_counts if s1 == source]))
            for source in self.emit_counts
        }
        mv = FastMajorityVoter(initial_weights=init_mv_weights)
        mv.out_labels = self.out_labels
        mv.observed_labels = self.observed_labels
        mv.label_groups = self.label_groups
        for obs in all_obs:
            agg_array = mv.aggregate(obs).values
            if len(agg_array) == 0:
                continue
            self.start_counts += agg_array[0, :]
            if len(agg_array) > 1:
                outers = agg_array[:-1, :, None] * agg_array[1:, None, :]
                self.trans_counts = np.cumsum(np.concatenate([self.trans_counts[None], outers]), axis=0)[-1]
            one_hots = self.to_one_hots(obs)
            for source in one_hots:
                self.emit_counts[source] += np.dot(agg_array.T, one_hots[source])
            for src, src2 in self.corr_counts:
                if src in one_hots and src2 in one_hots:
                    self.corr_counts[(src, src2)] += np.dot(one_hots[src2].T, one_hots[src])


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
