"""The LLM teachers' task: spacy-llm's SpanCat.v3 (chain-of-thought span lists, overlaps allowed)
with labels, definitions and description from a data file (configs/teachers/llm/labels.yml),
few-shot examples read from gold *train* documents, a parser that counts whatever it drops or
adjusts, and a shard reducer that keeps the note's text exact.

Alignment: a phrase the LLM returns is looked up case-insensitively in the text, then widened to
whole spaCy tokens (`alignment_mode="expand"`), so "fever" in "fevers" still lands on the tokens
the gold corpora are scored on. Every widening is counted (`widened`); one that starts inside a
token ("e" in "Patient", "tension" in "hypertension") or more than doubles the phrase names
something else, so it is refused (`widening_refused`) unless the config sets
`refuse_widening = false`; the next occurrence of the phrase is tried first.
"""

# No `from __future__ import annotations`: confection validates the factories' arguments from their
# type hints at runtime.
import functools
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import spacy
import srsly
from spacy.tokens import Doc, DocBin, Span
from spacy_llm.registry import registry
from spacy_llm.tasks.span.examples import SpanReason
from spacy_llm.tasks.spancat.registry import make_spancat_task_v3
from spacy_llm.tasks.spancat.task import SpanCatTask
from spacy_llm.tasks.util.parsing import find_substrings
from spacy_llm.tasks.util.sharding import make_shard_mapper

from ..labels import LABELS
from .endpoint import Answer

ACCOUNTING_KEY = "clin_distill.llm"
ERROR_KEY = "clin_distill.llm.error"  # the last failed request's error (status codes and hosts only)
MAX_WIDENING = 2.0  # a widened span may be at most this many times the phrase's length
COUNT_KEYS = (
    "malformed_lines",
    "prefix_dropped",  # text before a line's first "." that was not its list number (spacy-llm drops it)
    "unknown_label",
    "not_in_text",
    "misaligned",
    "widened",
    "widening_refused",
    "overlapping",
    "truncated_answers",  # cut by max_tokens
    "empty_answers",
    "usage_missing",  # answers without token counts (counted as 0)
    "over_context",  # prompts the server counted above context_length: raise chars_per_token
    "failed_requests",  # no answer after all tries: the note is not cached, a rerun asks again
)
_LIST_NUMBER = re.compile(r"\s*\d*\s*")


def read_labels(path: str | Path) -> dict[str, Any]:
    """The labels file: `description` and, per label in prompt order, `definition` and `reason`."""
    data = srsly.read_yaml(path)
    unknown = set(data["labels"]) - set(LABELS)
    if unknown:
        raise ValueError(f"{path}: labels {sorted(unknown)} are not among {list(LABELS)}")
    return data


def fewshot_examples(
    path: str | Path, n: int, max_words: int, reasons: dict[str, str]
) -> list[dict[str, Any]]:
    """`n` passages of consecutive gold sentences, each from another document, preferring those
    that show all labels (those in `reasons`); ties broken by a hash of the text so the choice
    is deterministic. `n` = 0: none, and the file is not read (zero-shot).
    """
    if n <= 0:
        return []
    nlp = spacy.blank("en")
    sentencizer = nlp.add_pipe("sentencizer")
    candidates = []
    for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
        sents = list(sentencizer(doc).sents)
        best = None
        for i in range(len(sents)):
            for j in range(i + 1, len(sents) + 1):
                window = doc[sents[i].start : sents[j - 1].end]
                if len(window) > max_words:
                    break
                ents = [
                    e
                    for e in doc.ents
                    if e.start >= window.start and e.end <= window.end and e.label_ in reasons
                ]
                key = (
                    len({e.label_ for e in ents}),
                    len(ents),
                    hashlib.sha256(window.text.encode()).hexdigest(),
                )
                if ents and (best is None or key > best[0]):
                    best = (key, window, ents)
        if best:
            candidates.append(best)
    candidates.sort(key=lambda c: c[0], reverse=True)
    return [
        {
            "text": window.text.strip(),
            "spans": [
                {"text": e.text, "is_entity": True, "label": e.label_, "reason": reasons[e.label_]}
                for e in ents
            ],
        }
        for _, window, ents in candidates[:n]
    ]


@registry.llm_misc("clin_distill.GoldFewShotReader.v1")
def gold_fewshot_reader(
    path: str, labels_path: str, n: int = 2, max_words: int = 60
) -> Callable[[], list[dict[str, Any]]]:
    """Like spacy-llm's `spacy.FewShotReader.v1`, but picking the examples from a gold DocBin
    (`fewshot_examples`): the gold train split is written by the `corpus` step from the project's
    split settings, so a fixed examples file would go stale; dev and test are never read. For
    fixed examples use `spacy.FewShotReader.v1` with a file of the same shape."""
    reasons = {label: spec["reason"] for label, spec in read_labels(labels_path)["labels"].items()}
    return functools.partial(fewshot_examples, path, n, max_words, reasons)


def _widened_too_far(span: Span, begin: int, end: int) -> bool:
    return span.start_char < begin or len(span.text) > MAX_WIDENING * (end - begin)


def parse_spans(task: SpanCatTask, shard: Doc, response: str) -> tuple[list[Span], Counter]:
    """Spans from one answer, and counts of every line or phrase that was dropped or adjusted.
    Lines are `n. text | True | LABEL | reason`; phrases are searched in answer order from the
    previous span's start, then from the beginning (small models do not keep text order).
    """
    counts: Counter = Counter()
    spans: list[Span] = []
    seen: set[tuple[int, int, str]] = set()
    cursor = 0
    refuse = getattr(task, "refuse_widening", True)
    for line in response.strip().splitlines():
        if not line.strip():
            continue
        try:
            reason = SpanReason.from_str(line)
        except ValueError:
            counts["malformed_lines"] += 1
            continue
        if "." in line and not _LIST_NUMBER.fullmatch(line.strip().split(".", 1)[0]):
            counts["prefix_dropped"] += 1
        if not reason.is_entity:
            continue
        label = task.label_dict.get(task.normalizer(reason.label))
        if label is None:
            counts["unknown_label"] += 1
            continue
        span, refused = None, False
        for start in (cursor, 0):
            for begin, end in find_substrings(shard.text, [reason.text], find_after=start):
                candidate = shard.char_span(begin, end, label=label, alignment_mode=task.alignment_mode)
                if candidate is None or (candidate.start, candidate.end, label) in seen:
                    continue
                if refuse and _widened_too_far(candidate, begin, end):
                    refused = True
                    continue
                span = candidate
                break
            if span is not None:
                break
        if span is None:
            found = find_substrings(shard.text, [reason.text])
            counts["widening_refused" if refused else "misaligned" if found else "not_in_text"] += 1
            continue
        counts["widened"] += (span.start_char, span.end_char) != (begin, end)
        seen.add((span.start, span.end, label))
        spans.append(span)
        cursor = span.start_char
    spans.sort()
    counts["overlapping"] += sum(a.end > b.start for a, b in zip(spans, spans[1:], strict=False))
    return spans, counts


def record(shard: Doc, response: str, counts: Counter) -> None:
    """What one request cost and what its answer lost, kept on the shard until the reducer sums it."""
    entry = {k: counts.get(k, 0) for k in COUNT_KEYS}
    if isinstance(response, Answer):
        entry.update(response.usage)
        entry["latency_s"] = round(response.latency_s, 4)
        entry["tries"] = response.tries
        entry["truncated_answers"] += response.finish_reason == "length"
        entry["usage_missing"] += response.usage_missing
        entry["over_context"] += response.over_context
        if response.error:
            entry["failed_requests"] += 1
            shard.user_data[ERROR_KEY] = response.error
    entry["requests"] = 1
    entry["empty_answers"] += not response.strip()
    shard.user_data[ACCOUNTING_KEY] = entry


def parse_responses(
    task: SpanCatTask, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[str]]
) -> Iterable[list[list[Span]]]:
    """spacy-llm's parser hook: one answer per shard, strictly (a missing answer would silently
    drop its shard's spans)."""
    for shards_for_doc, responses_for_doc in zip(shards, responses, strict=True):
        out = []
        for shard, response in zip(list(shards_for_doc), list(responses_for_doc), strict=True):
            spans, counts = parse_spans(task, shard, response)
            record(shard, response, counts)
            out.append(spans)
        yield out


def reduce_shards(task: SpanCatTask, shards: Iterable[Doc]) -> Doc:
    """Shards are consecutive token slices of one note, so joining them without added whitespace
    gives back the exact text (spacy-llm's reducer may add a space at each cut).
    """
    shards = list(shards)
    total: Counter = Counter()
    errors = []
    for shard in shards:
        total.update(shard.user_data.pop(ACCOUNTING_KEY, {}))
        errors.append(shard.user_data.pop(ERROR_KEY, None))
    doc = Doc.from_docs(shards, ensure_whitespace=False) if len(shards) > 1 else shards[0]
    doc.user_data[ACCOUNTING_KEY] = {
        **{k: round(v, 4) for k, v in total.items()},
        "shards": len(shards),
        "run": getattr(task, "run_id", None),
    }
    if any(errors):
        doc.user_data[ERROR_KEY] = next(e for e in reversed(errors) if e)
    return doc


def make_char_token_estimator(chars_per_token: float = 3.0) -> Callable[[str], int]:
    """Prompt tokens estimated from characters: BPE vocabularies split clinical words into
    several tokens, so spacy-llm's default (one token per whitespace word) undercounts and a
    "fitting" shard would overflow the context. 3 characters per token is on the safe side.
    """

    def estimate(text: str) -> int:
        return int(len(text) / chars_per_token) + 1

    return estimate


@registry.llm_tasks("clin_distill.ClinicalSpans.v1")
def make_clinical_spans_task(
    spans_key: str,
    labels_path: str,
    examples: Callable[[], Iterable[dict[str, Any]]] | None = None,
    chars_per_token: float = 3.0,
    alignment_mode: str = "expand",
    refuse_widening: bool = True,
) -> SpanCatTask:
    """spacy-llm's SpanCat.v3 with the labels file's labels, definitions and description, writing
    `doc.spans[spans_key]`, with our parser, shard reducer and token estimator."""
    spec = read_labels(labels_path)
    task = make_spancat_task_v3(
        parse_responses=parse_responses,
        labels=list(spec["labels"]),
        description=spec["description"],
        label_definitions={label: s["definition"] for label, s in spec["labels"].items()},
        examples=examples,
        shard_mapper=make_shard_mapper(n_token_estimator=make_char_token_estimator(chars_per_token)),
        shard_reducer=reduce_shards,
        alignment_mode=alignment_mode,
        case_sensitive_matching=False,
        spans_key=spans_key,
    )
    task.refuse_widening = refuse_widening
    # Written into each labelled document; a document with another run id came from the cache.
    task.run_id = uuid.uuid4().hex[:12]
    return task
