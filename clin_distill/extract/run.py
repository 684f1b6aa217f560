"""Run an extraction: notes -> pipeline -> output, on this machine or on a Ray cluster.

Both paths write the same records in input order (Ray Data with `preserve_order`), so a Ray run's
output is byte-identical to a single-process one. Progress is a tqdm bar in notes/s; the summary
counts notes, entities and errors. Nothing of a note's text is logged.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from spacy.language import Language
from tqdm import tqdm

from .notes import Note
from .output import Output
from .pipeline import build_pipeline, note_record


@dataclass
class Summary:
    notes: int = 0
    entities: int = 0
    errors: int = 0
    skipped: int = 0  # already in the output (resumed)
    words: int = 0
    seconds: float = 0.0  # labelling, after the pipeline is loaded (on Ray: actor start-up included)
    load_seconds: float = 0.0
    error_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, words: int, entities: int, error: str | None) -> None:
        self.notes += 1
        self.words += words
        if error:
            self.errors += 1
            reason = error.split(": ", 1)[-1].split(" (")[0]
            self.error_reasons[reason] = self.error_reasons.get(reason, 0) + 1
        else:
            self.entities += entities

    def line(self) -> str:
        rate = self.notes / self.seconds if self.seconds else 0.0
        return (
            f"{self.notes:,} notes, {self.entities:,} entities, {self.errors:,} errors"
            f"{' ' + str(self.error_reasons) if self.error_reasons else ''}, {self.skipped:,} already done; "
            f"{self.seconds:.1f} s ({rate:.1f} notes/s, {self.words / max(self.seconds, 1e-9):,.0f} words/s)"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def _pending(notes: Iterable[Note], done: set[str], summary: Summary) -> Iterator[Note]:
    for note in notes:
        if note.id in done:
            summary.skipped += 1
        else:
            done.add(note.id)  # a repeated id is labelled once
            yield note


def extract(
    notes: Iterable[Note],
    output: Output,
    model: str,
    batch_size: int | None = None,
    n_process: int = 1,
    progress: bool = True,
    ray_address: str | None = None,
    ray_workers: int = 2,
    ray_cpus_per_worker: float = 1.0,
    flush_every: int = 32,
) -> Summary:
    summary = Summary()
    pending = _pending(notes, output.resume(), summary)
    if ray_address is None:
        load = time.perf_counter()
        nlp = build_pipeline(model)
        batch_size = batch_size or nlp.batch_size
        summary.load_seconds = time.perf_counter() - load
    bar = tqdm(desc="extract", unit=" notes", disable=not progress, smoothing=0.1)
    start = time.perf_counter()
    if ray_address is None:
        results = _local(pending, nlp, batch_size, n_process)
    else:
        results = _ray(pending, model, batch_size, ray_address, ray_workers, ray_cpus_per_worker)
    buffer: list[str] = []
    for record, words, entities, error in results:
        buffer.append(record)
        summary.add(words, entities, error)
        bar.update(1)
        if len(buffer) >= flush_every:
            output.write(buffer)
            buffer = []
    if buffer:
        output.write(buffer)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _local(
    notes: Iterator[Note], nlp: Language, batch_size: int, n_process: int
) -> Iterator[tuple[str, int]]:
    # Error notes travel as empty texts, so the records come out in input order.
    stream = ((n.text or "", n) for n in notes)
    for doc, note in nlp.pipe(stream, as_tuples=True, batch_size=batch_size, n_process=n_process):
        entities = len(doc.user_data["clin_entities"])
        yield note_record(note.id, doc, note.error), doc.user_data["clin_words"], entities, note.error


class RayExtractor:
    """One pipeline per Ray actor (loaded once), labelling the batches Ray Data hands it."""

    def __init__(self, model: str, batch_size: int | None) -> None:
        self.nlp = build_pipeline(model)
        self.batch_size = batch_size or self.nlp.batch_size

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        records, words, entities = [], [], []
        docs = self.nlp.pipe([t or "" for t in batch["text"]], batch_size=self.batch_size)
        for doc, note_id, error in zip(docs, batch["id"], batch["error"], strict=True):
            records.append(note_record(str(note_id), doc, error or None))
            words.append(doc.user_data["clin_words"])
            entities.append(len(doc.user_data["clin_entities"]))
        return {
            "record": np.array(records, dtype=object),
            "words": np.array(words, dtype=np.int64),
            "entities": np.array(entities, dtype=np.int64),
            "error": batch["error"],
        }


RAY_BATCH = 32  # notes per Ray Data batch handed to an actor
RAY_CHUNK = 20_000  # notes per Ray dataset: the driver holds one chunk of texts at a time


def _ray(
    notes: Iterator[Note], model: str, batch_size: int | None, address: str, workers: int, cpus: float
) -> Iterator[tuple[str, int]]:
    import ray

    if not ray.is_initialized():
        # "local": a Ray instance on this machine; otherwise a cluster address ("auto", "ray://host:10001").
        ray.init(address=None if address == "local" else address, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    while chunk := list(itertools.islice(notes, RAY_CHUNK)):
        items = [{"id": n.id, "text": n.text or "", "error": n.error or ""} for n in chunk]
        ds = ray.data.from_items(items).map_batches(
            RayExtractor,
            fn_constructor_kwargs={"model": model, "batch_size": batch_size},
            batch_size=RAY_BATCH,
            batch_format="numpy",
            concurrency=workers,
            num_cpus=cpus,
        )
        for batch in ds.iter_batches(batch_size=RAY_BATCH, batch_format="numpy"):
            for record, words, entities, error in zip(
                batch["record"], batch["words"], batch["entities"], batch["error"], strict=True
            ):
                yield str(record), int(words), int(entities), str(error) or None
