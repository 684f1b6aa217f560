"""The student beside its teachers: ontology teachers' words/s, the local LLM teacher's seconds per
note against the student's on the same notes, and cost per 1,000 notes against hosted LLMs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from ..llm.label import cost_per_1k, label_docs, load_teacher, model_settings
from ..llm.server import llama_server, smollm2_gguf
from ..teachers.labelling import load_teachers, words_per_second
from .speed import student_throughput


def ontology_speed(teachers: Path | None, texts: list[str]) -> dict[str, dict[str, float]]:
    """Each ontology and rule teacher's words/s on the benchmark notes, tokenizer included."""
    out: dict[str, dict[str, float]] = {}
    if teachers is None:
        return out
    for name, nlp in load_teachers(teachers).items():
        wps, _ = words_per_second(nlp, texts, repeats=2)
        out[name] = {"words_per_second": round(wps, 1)}
    return out


def llm_per_note(
    llm_config: Path,
    few: list[Doc],
    sample: list[Doc],
    students: dict[str, Language],
    batch_size: int,
    n_ctx: int,
    log_dir: Path,
) -> dict[str, Any]:
    """The local LLM teacher's seconds per note on `few` notes, and each student's on the same notes
    ("default" is the packaged model; other keys are encoder variants, reported by name)."""
    name = llm_config.stem
    model_cfg = model_settings(llm_config)
    log = log_dir / f".{name}-server.log"
    # Timed as the student is: after a warm-up (another note: the server's first request pays
    # for loading), best of two passes.
    with llama_server(smollm2_gguf(), model_cfg["endpoint"], model_cfg["name"], n_ctx, log):
        nlp = load_teacher(llm_config, Path("corpus/llm_cache"), overrides={"paths.cache": None})
        list(label_docs(nlp, [sample[len(few) % len(sample)].copy()]))
        passes = []
        for _ in range(2):
            start = time.perf_counter()
            records = [r for _, r in label_docs(nlp, [d.copy() for d in few])]
            passes.append(time.perf_counter() - start)
        llm_seconds = min(passes)
    log.unlink(missing_ok=True)
    # measured as the throughput rows are: after a warm-up, best of repeated passes (one pass
    # over a few notes takes about 0.3 s, too short to time once)
    texts = [d.text for d in few]
    seconds = {
        key: student_throughput(nlp, texts, batch_size, repeats=5)["seconds"] for key, nlp in students.items()
    }
    out = {
        "notes": len(few),
        "seconds_per_note": round(llm_seconds / len(few), 2),
        "seconds_per_note_by_pass": [round(t / len(few), 2) for t in passes],
        "words_per_second": round(sum(r["words"] for r in records) / llm_seconds, 1),
        "failed": sum(r["status"] == "failed" for r in records),
        "student_seconds_per_note_same_notes": round(seconds["default"] / len(few), 4),
        "student_speedup_per_note": round(llm_seconds / seconds["default"], 1),
    }
    for variant in (k for k in students if k != "default"):
        out[f"student_{variant}_seconds_per_note_same_notes"] = round(seconds[variant] / len(few), 4)
        out[f"student_{variant}_speedup_per_note"] = round(llm_seconds / seconds[variant], 1)
    return out


def cost_per_1k_notes(
    llm_report: Path, prices: dict[str, dict[str, Any]], student_words_per_second: float
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """USD per 1,000 notes of the length the LLM accounting measured, and the basis of that figure:
    the student on a CPU instance at the hourly price in the price table; hosted LLMs from their
    token counts; local LLM teachers from their own accounting."""
    llm = json.loads(llm_report.read_text())
    measured = next(t["accounting"] for t in llm["teachers"].values() if t["accounting"].get("requests"))
    note_words = measured["words"] / measured["notes"]
    student_s_per_note = note_words / student_words_per_second
    costs = {"student_cpu": round(student_s_per_note * 1000 / 3600 * prices["cpu"]["usd_per_hour"], 5)}
    costs.update({m: cost_per_1k(measured, p) for m, p in prices.items() if m != "cpu"})
    for name, t in llm["teachers"].items():
        costs[f"{name}_cpu"] = t["accounting"].get("cost_per_1k_notes_usd")
    basis = {
        "mean_words_per_note": round(note_words, 1),
        "cpu_usd_per_hour": prices["cpu"]["usd_per_hour"],
        "cpu_price_source": prices["cpu"]["source"],
        "hosted_tokens": "mean prompt/completion tokens per note measured by label-llm for our prompt "
        "(local model's tokenizer; hosted tokenizers differ by a few percent)",
    }
    return costs, basis
