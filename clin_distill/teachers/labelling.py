"""Run teacher pipelines over DocBins, keeping every other annotation (gold ents, other groups)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..corpora.stats import word_count
from ..msgpack_registries import cache_msgpack_registries
from ..parallel import forked_map

cache_msgpack_registries()  # a span group per teacher per doc: see that module


def teacher_dirs(folder: Path) -> list[Path]:
    """The saved teacher pipelines in `folder` (a folder with config.cfg each), sorted by name: the
    folder name is the teacher's name and span-group key."""
    paths = sorted(p for p in Path(folder).iterdir() if (p / "config.cfg").exists())
    if not paths:
        raise FileNotFoundError(f"no teacher pipeline (a folder with config.cfg) in {folder}")
    return paths


def load_teachers(folder: Path) -> dict[str, Language]:
    """Teacher name -> pipeline, sorted."""
    return {p.name: spacy.load(p) for p in teacher_dirs(folder)}


def saved_teacher_labels(path: Path) -> tuple[str, ...]:
    """The labels a saved teacher can give (those of its first component: the ruler or the rules),
    from the meta.json spaCy wrote beside it: loading a lexicon teacher takes seconds (all its
    patterns), reading this takes none."""
    meta = srsly.read_json(Path(path) / "meta.json")
    return tuple(meta["labels"][meta["pipeline"][0]])


def apply_teacher(nlp: Language, docs: Iterable[Doc]) -> Iterable[Doc]:
    """Run a teacher's components on already tokenized docs (the tokenizer is not re-run)."""
    for _, proc in nlp.pipeline:
        docs = proc.pipe(docs, batch_size=nlp.batch_size) if hasattr(proc, "pipe") else map(proc, docs)
    return docs


def label_docbin(teachers: dict[str, Language], src: Path, dest: Path) -> int:
    """Label one DocBin with every teacher; gold `doc.ents` and the gold span group stay as they are."""
    vocab = next(iter(teachers.values())).vocab
    docs: Iterable[Doc] = DocBin().from_disk(src).get_docs(vocab)
    for nlp in teachers.values():
        docs = apply_teacher(nlp, docs)
    out = DocBin(store_user_data=True)
    n = 0
    for doc in docs:
        out.add(doc)
        n += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    out.to_disk(dest)
    return n


# Files are labelled side by side in processes forked after the teachers are loaded (`forked_map`;
# loading them takes longer than labelling any one file), so the workers share the pipelines.
MAX_WORKERS = 2


def label_docbins(teachers: dict[str, Language], jobs: list[tuple[Path, Path]]) -> Iterator[tuple[Path, int]]:
    """`label_docbin` for each (source, destination), yielding (source, docs) in the given order.
    Each file's output is the same whichever process labels it."""
    counts = forked_map(
        lambda job: label_docbin(teachers, *job), jobs, MAX_WORKERS, desc="label-ontology", unit="file"
    )
    for (src, _), n in zip(jobs, counts, strict=True):
        yield src, n


def words_per_second(nlp: Language, texts: list[str], repeats: int = 1) -> tuple[float, int]:
    """Throughput from raw text (tokenizer included), one process: best of `repeats` runs."""
    best = float("inf")
    words = 0
    for _ in range(repeats):
        start = time.perf_counter()
        words = sum(word_count(doc) for doc in nlp.pipe(texts))
        best = min(best, time.perf_counter() - start)
    return words / best, words
