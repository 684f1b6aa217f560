"""The LLM teachers' task: spacy-llm's SpanCat.v3 (chain-of-thought span lists, overlaps allowed)
with our labels, written definitions, few-shot examples from gold *train* documents, a parser that
counts what it drops, and a shard reducer that keeps the note's text exact.

Alignment: a phrase the LLM returns is looked up case-insensitively in the text, then widened to
whole spaCy tokens (`alignment_mode="expand"`), so "fever" in "fevers" or "aspirin" in
"aspirin-induced" still lands on the tokens the gold corpora are scored on.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy_llm.registry import registry
from spacy_llm.tasks.span.examples import SpanReason
from spacy_llm.tasks.spancat.registry import make_spancat_task_v3
from spacy_llm.tasks.spancat.task import SpanCatTask
from spacy_llm.tasks.util.parsing import find_substrings
from spacy_llm.tasks.util.sharding import make_shard_mapper

from ..labels import DISEASE, LABELS, MEDICATION, SYMPTOM
from .endpoint import Answer

ACCOUNTING_KEY = "clin_distill.llm"

# Written to match the gold guidelines: MACCROBAT's Medication / Disease_disorder / Sign_symptom
# (mentions as short as the concept, body part separate) and BC5CDR/NCBI disease mentions.
LABEL_DEFINITIONS = {
    MEDICATION: (
        "a drug or therapeutic substance given to or taken by the patient, by generic or brand name or "
        "drug class (metformin, Lipitor, insulin, antibiotics). Not the dose, route or frequency."
    ),
    DISEASE: (
        "a named disease, disorder, syndrome, infection, cancer or injury (type 2 diabetes, pneumonia, "
        "breast cancer, fracture), including a suspected or ruled-out one."
    ),
    SYMPTOM: (
        "a sign or symptom: something the patient feels or the clinician observes (pain, fever, cough, "
        "swelling, tachycardia), including one the patient denies. Use the shortest phrase naming it, "
        "without the body part (for 'chest pain' the SYMPTOM is 'pain')."
    ),
}
DESCRIPTION = (
    "The text is from a clinical note or case report. Only extract spans that appear verbatim in it."
)
REASONS = {
    MEDICATION: "is a drug the patient takes",
    DISEASE: "is a disease",
    SYMPTOM: "is a sign or symptom",
}
COUNT_KEYS = (
    "malformed_lines",
    "unknown_label",
    "not_in_text",
    "misaligned",
    "overlapping",
    "truncated_answers",
)


def fewshot_examples(path: str | Path, n: int, max_words: int) -> list[dict[str, Any]]:
    """`n` passages of consecutive gold sentences, each from another document, preferring those
    that show all labels; ties broken by a hash of the text so the choice is deterministic.
    """
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
                    if e.start >= window.start and e.end <= window.end and e.label_ in LABELS
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
                {"text": e.text, "is_entity": True, "label": e.label_, "reason": REASONS[e.label_]}
                for e in ents
            ],
        }
        for _, window, ents in candidates[:n]
    ]


def parse_spans(task: SpanCatTask, shard: Doc, response: str) -> tuple[list[Span], Counter]:
    """Spans from one answer, and counts of every line or phrase that was dropped or doubtful.
    Lines are `n. text | True | LABEL | reason`; phrases are searched in answer order from the
    previous span's start, then from the beginning (small models do not keep text order).
    """
    counts: Counter = Counter()
    spans: list[Span] = []
    seen: set[tuple[int, int, str]] = set()
    cursor = 0
    for line in response.strip().splitlines():
        if not line.strip():
            continue
        try:
            reason = SpanReason.from_str(line)
        except ValueError:
            counts["malformed_lines"] += 1
            continue
        if not reason.is_entity:
            continue
        label = task.label_dict.get(task.normalizer(reason.label))
        if label is None:
            counts["unknown_label"] += 1
            continue
        span = None
        for start in (cursor, 0):
            for begin, end in find_substrings(shard.text, [reason.text], find_after=start):
                candidate = shard.char_span(begin, end, label=label, alignment_mode=task.alignment_mode)
                if candidate is None:
                    continue
                if (candidate.start, candidate.end, label) not in seen:
                    span = candidate
                    break
            if span is not None:
                break
        if span is None:
            found = find_substrings(shard.text, [reason.text])
            counts["not_in_text" if not found else "misaligned"] += 1
            continue
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
    entry["requests"] = 1
    entry["empty_answers"] = int(not response.strip())
    shard.user_data[ACCOUNTING_KEY] = entry


@registry.llm_misc("clin_distill.span_parser.v1")
def make_span_parser():
    def parse_responses(
        task: SpanCatTask, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[str]]
    ) -> Iterable[list[list[Span]]]:
        for shards_for_doc, responses_for_doc in zip(shards, responses, strict=False):
            out = []
            for shard, response in zip(shards_for_doc, responses_for_doc, strict=False):
                spans, counts = parse_spans(task, shard, response)
                record(shard, response, counts)
                out.append(spans)
            yield out

    return parse_responses


@registry.llm_misc("clin_distill.shard_reducer.v1")
def make_shard_reducer():
    def reduce_shards(task: SpanCatTask, shards: Iterable[Doc]) -> Doc:
        """Shards are consecutive token slices of one note, so joining them without added
        whitespace gives back the exact text (spacy-llm's reducer may add a space at each cut).
        """
        shards = list(shards)
        total: Counter = Counter()
        for shard in shards:
            total.update(shard.user_data.pop(ACCOUNTING_KEY, {}))
        doc = Doc.from_docs(shards, ensure_whitespace=False) if len(shards) > 1 else shards[0]
        doc.user_data[ACCOUNTING_KEY] = {
            **{k: round(v, 4) for k, v in total.items()},
            "shards": len(shards),
            "run": getattr(task, "run_id", None),
        }
        return doc

    return reduce_shards


@registry.llm_misc("clin_distill.char_token_estimator.v1")
def make_char_token_estimator(chars_per_token: float = 3.0):
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
    examples_path: str | None = None,
    n_examples: int = 2,
    max_example_words: int = 60,
    chars_per_token: float = 3.0,
    alignment_mode: str = "expand",
) -> SpanCatTask:
    """spacy-llm's SpanCat.v3 for MEDICATION, DISEASE, SYMPTOM, writing `doc.spans[spans_key]`."""
    examples = (
        fewshot_examples(examples_path, n_examples, max_example_words)
        if examples_path and n_examples
        else None
    )
    task = make_spancat_task_v3(
        parse_responses=make_span_parser(),
        labels=list(LABELS),
        description=DESCRIPTION,
        label_definitions=LABEL_DEFINITIONS,
        examples=(lambda: examples) if examples else None,
        shard_mapper=make_shard_mapper(n_token_estimator=make_char_token_estimator(chars_per_token)),
        shard_reducer=make_shard_reducer(),
        alignment_mode=alignment_mode,
        case_sensitive_matching=False,
        spans_key=spans_key,
    )
    # Written into each labelled document; a document with another run id came from the cache.
    task.run_id = uuid.uuid4().hex[:12]
    return task
