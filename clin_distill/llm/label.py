"""Run one LLM teacher over documents: spans into `doc.spans[<teacher>]`, one accounting record per
document, failures and empty answers recorded and left uncached so that a rerun retries them."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from statistics import mean
from typing import Any

import spacy
from confection import Config
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch

from ..corpora.stats import word_count
from . import cache  # noqa: F401 - registers clin_distill.NoteCache.v1 for the teacher configs
from .task import ACCOUNTING_KEY, COUNT_KEYS, ERROR_KEY
from .transport import (
    ALLOW_REMOTE_ENV,
    LLMRequestError,
    RemoteEndpointRefused,
    check_urls,
    is_loopback,
    models_url,
    remote_allowed,
)


def model_settings(config_path: Path) -> dict[str, Any]:
    """A teacher config's `[components.llm.model]` block, read without building anything."""
    return dict(Config().from_disk(config_path, interpolate=False)["components"]["llm"]["model"])


def skip_reason(config_path: Path, allow_remote: bool) -> str | None:
    """Why a teacher cannot run here (one line), or None. Hosted teachers need their key and the
    remote opt-in; the model itself enforces the same rules when it is built."""
    model = model_settings(config_path)
    endpoint, key_env = model["endpoint"], model.get("api_key_env", "OPENAI_API_KEY")
    if not is_loopback(endpoint):
        if key_env and not os.environ.get(key_env):
            return f"{key_env} is not set"
        if "YOUR-RESOURCE" in endpoint:
            return "endpoint not configured (edit its config)"
        if not remote_allowed(allow_remote):
            return f"remote endpoint not allowed for patient data (set {ALLOW_REMOTE_ENV}=1 to opt in)"
    try:  # the model's own guard, for the model check and the proxy too
        verify_url = models_url(endpoint, model.get("verify_url"))
        check_urls(config_path.stem, endpoint, allow_remote, verify_url, model.get("proxy"))
    except RemoteEndpointRefused as err:
        return str(err)
    return None


def load_teacher(
    config_path: Path, cache_dir: Path, allow_remote: bool = False, overrides: dict[str, Any] | None = None
) -> Language:
    """The teacher's spaCy pipeline; its name (the file stem) is also its span key. Each version of
    the config (model settings included) gets its own cache folder; the cache key covers the note's
    exact text and the rendered prompt (label file and examples included)."""
    logging.getLogger("spacy_llm").setLevel(logging.INFO)  # its DEBUG lines print prompts: note text
    name = config_path.stem
    version = hashlib.sha256(config_path.read_bytes()).hexdigest()[:10]
    overrides = {
        "components.llm.task.spans_key": name,
        "paths.cache": str(cache_dir / name / version),
        "components.llm.model.allow_remote": allow_remote,
        **(overrides or {}),
    }
    config = spacy.util.load_config(config_path, overrides=overrides, interpolate=False)
    return spacy.util.load_model_from_config(config, auto_fill=True)


def label_docs(
    nlp: Language, docs: Iterable[Doc], batch_size: int | None = None
) -> Iterator[tuple[Doc, dict[str, Any]]]:
    """Each gold or unlabelled doc with the teacher's span group added, and its record.
    The LLM sees a bare copy (same tokens, no annotations), so spans map back by token index.
    Docs go to spacy-llm in batches (default: the model's `max_concurrency` notes, so a local
    one-at-a-time teacher still records and caches note by note), whose prompts the model sends
    concurrently; a batch that raises is redone note by note, so one bad note fails alone."""
    llm = nlp.get_pipe("llm")
    batch_size = batch_size or getattr(llm._model, "_max_concurrency", 1)
    for batch in minibatch(enumerate(docs), batch_size):
        bare = [
            Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d])
            for _, d in batch
        ]
        try:
            outs: list[Doc | BaseException] = list(llm.pipe(bare, batch_size=len(bare)))
        except Exception:  # noqa: BLE001 - redone one by one below, each failure recorded
            outs = []
            for b in bare:
                try:
                    outs.append(llm(b))
                except Exception as err:  # noqa: BLE001 - record it, keep going, retry next run
                    outs.append(err)
        for (i, doc), out in zip(batch, outs, strict=True):
            yield doc, _record(llm, i, doc, out)


def _record(llm: Any, i: int, doc: Doc, out: Doc | BaseException) -> dict[str, Any]:
    key = llm.task.spans_key
    record: dict[str, Any] = {"doc": doc.user_data.get("doc_id", i), "words": word_count(doc)}
    if isinstance(out, BaseException):
        # Our own errors and timeouts name only status codes and hosts; any other message
        # could quote the note, so only its type is kept.
        safe = isinstance(out, (LLMRequestError, TimeoutError))
        error = f"{type(out).__name__}: {out}"[:300] if safe else type(out).__name__
        record.update(status="failed", error=error)
        return record
    if out.text != doc.text:  # a bug, never expected: kept out of the labels, and loud
        record.update(status="failed", error=f"text changed in the LLM pipeline ({len(out.text)} chars)")
        return record
    acct = dict(out.user_data.get(ACCOUNTING_KEY, {}))
    cached = acct.pop("run", None) != llm.task.run_id
    if acct.get("failed_requests"):  # not cached: a rerun asks again
        record.update(
            acct, status="failed", error=out.user_data.get(ERROR_KEY, "request failed"), cached=cached
        )
        return record
    doc.spans[key] = [Span(doc, s.start, s.end, label=s.label_) for s in out.spans.get(key, [])]
    status = "ok"
    if not doc.spans[key] and acct.get("empty_answers", 0) == acct.get("requests", 1):
        status = "empty"  # not cached (unless the cache's cache_empty_answers): a rerun asks again
    elif not doc.spans[key] and acct.get("malformed_lines"):
        status = "malformed"
    record.update(acct, status=status, spans=len(doc.spans[key]), cached=cached)
    return record


def summarise(records: list[dict[str, Any]], prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """Totals and per-note means over the records of one teacher; cost per 1,000 notes from the price."""
    done = [r for r in records if r["status"] != "failed"]
    out: dict[str, Any] = {
        "notes": len(records),
        "words": sum(r["words"] for r in records),
        "failed": sum(r["status"] == "failed" for r in records),
        "malformed_notes": sum(r["status"] == "malformed" for r in records),
        "empty_notes": sum(r["status"] == "empty" for r in records),
        "served_from_cache": sum(bool(r.get("cached")) for r in done),
    }
    for k in ("requests", "shards", "prompt_tokens", "completion_tokens", "latency_s", "spans", *COUNT_KEYS):
        out[k] = round(sum(r.get(k, 0) for r in done), 3)
    if done:
        for k in ("prompt_tokens", "completion_tokens", "latency_s"):
            out[f"mean_{k}_per_note"] = round(mean(r.get(k, 0) for r in done), 3)
        out["words_per_second"] = round(sum(r["words"] for r in done) / max(out["latency_s"], 1e-9), 1)
    if prices and done:
        out["cost_per_1k_notes_usd"] = cost_per_1k(out, prices)
    return out


def cost_per_1k(summary: dict[str, Any], price: dict[str, Any]) -> float:
    """USD per 1,000 notes: token prices for hosted models, machine hours for local ones."""
    if "usd_per_hour" in price:
        return round(summary["mean_latency_s_per_note"] * 1000 / 3600 * price["usd_per_hour"], 4)
    per_note = summary["mean_prompt_tokens_per_note"] * price["input"] + (
        summary["mean_completion_tokens_per_note"] * price["output"]
    )
    return round(per_note * 1000 / 1e6, 4)
