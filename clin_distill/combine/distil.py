"""Apply the selected teacher combination to teacher-labelled documents: the student's corpus."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from spacy.tokens import Doc

from ..corpora.stats import CorpusStats
from ..labels import GOLD_SPANS_KEY
from .strategies import combine


def is_dev(doc_id: str, dev_percent: int, salt: str = "clin-distill-dev") -> bool:
    """Deterministic document-level hold-out by hash of the document id."""
    return int(hashlib.sha256(f"{salt}:{doc_id}".encode()).hexdigest(), 16) % 100 < dev_percent


def distil_docs(
    docs: Iterable[Doc], selected: dict[str, dict[str, Any]], weights: dict[str, dict[str, float]]
) -> Iterable[Doc]:
    """Replace `doc.ents` with the merged teacher labels; the gold span group is removed, so no
    human label reaches the student's training data.
    """
    choice = {label: (s["subset"], s["strategy"]) for label, s in selected.items()}
    for doc in docs:
        doc.ents = combine(doc, choice, weights)
        if GOLD_SPANS_KEY in doc.spans:
            del doc.spans[GOLD_SPANS_KEY]
        yield doc


def corpus_stats(docs: Sequence[Doc]) -> dict[str, Any]:
    """Docs, words and entities per label, counted as the corpus step counts them."""
    stats = CorpusStats()
    for doc in docs:
        stats.add_doc(doc)
    return {k: v for k, v in stats.to_dict().items() if k in ("docs", "words", "entities")}
