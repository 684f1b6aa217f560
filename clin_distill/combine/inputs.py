"""The teacher-labelled documents the combination steps read: corpus/teachers/<set>.spacy (ontology
and rule teachers) with each LLM teacher's span group added from corpus/llm/<teacher>/<set>.spacy
(matched by document id, same tokens), and the calibration applied when one is given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import spacy
from spacy.tokens import Doc, DocBin, Span

from ..msgpack_registries import cache_msgpack_registries
from .calibrate import calibrate_docs

cache_msgpack_registries()  # a span group per teacher per doc: see that module


def llm_teachers(llm_dir: Path | None) -> list[str]:
    return sorted(p.name for p in llm_dir.iterdir() if p.is_dir()) if llm_dir and llm_dir.exists() else []


def load_docs(
    labelled_dir: Path, name: str, llm_dir: Path | None = None, calibration: dict[str, Any] | None = None
) -> list[Doc]:
    vocab = spacy.blank("en").vocab  # lexeme flags (is_space) need the English vocab
    docs = list(DocBin().from_disk(labelled_dir / f"{name}.spacy").get_docs(vocab))
    for teacher in llm_teachers(llm_dir):
        path = llm_dir / teacher / f"{name}.spacy"
        if not path.exists():
            continue
        by_id = {d.user_data.get("doc_id"): d for d in DocBin().from_disk(path).get_docs(vocab)}
        for doc in docs:
            other = by_id.get(doc.user_data.get("doc_id"))
            if other is None or teacher not in other.spans:
                continue
            if [t.text for t in other] != [t.text for t in doc]:
                raise ValueError(
                    f"{path}: doc {doc.user_data.get('doc_id')} has other tokens than {name}.spacy"
                )
            doc.spans[teacher] = [Span(doc, s.start, s.end, label=s.label_) for s in other.spans[teacher]]
    if calibration:
        docs = list(calibrate_docs(docs, calibration))
    return docs


def read_calibration(path: Path | None) -> dict[str, Any] | None:
    return json.loads(path.read_text())["table"] if path else None
