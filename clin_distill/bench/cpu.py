"""The CPU benchmark: the packaged student against the hardware ceiling and against its teachers,
in one run on one machine (`weasel run benchmark` -> reports/benchmark.{json,md}).

The student and the ceiling each run in a fresh process, so peak RSS is the student's own.
The packaged default runs its encoder at the precision its `clin_encoder_precision` component
resolves ("auto": its `with_bf16` path where the CPU has native bf16, else its `without_bf16`
path); every other precision and runtime (PyTorch float32, int8 and, on a CPU with native bf16,
bf16; ONNX Runtime float32 and int8) is measured beside it, each with its strict F1 on a gold set,
so a speed-up is never reported without its accuracy cost. Each is held to the fastest raw forward
pass of its precision on any runtime measured.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
import torch
from confection import Config
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..corpora.stats import word_count
from ..labels import LABELS
from ..scoring import score
from ..student.int8 import quantize_encoder
from ..student.memory import FACTORY as MEMORY
from ..student.precision import FACTORY as PRECISION
from ..student.precision import cpu_has_bf16
from ..student.tokenizer import TOKENIZER  # noqa: F401  (the packaged model's tokenizer, for spacy.load)
from ..student.windows import ARCHITECTURE  # noqa: F401  (registers the student's encoder for spacy.load)
from .speed import (
    benchmark_notes,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    speedup_in_turns,
    stage_shares,
    student_and_ceiling,
    varied_notes,
)
from .teachers import cost_per_1k_notes, llm_per_note, ontology_speed

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class CpuBenchmark:
    """What one run measures; the sample sizes are the CLI's options, so a quick run can shrink them."""

    model: str
    unlabelled_dir: Path
    llm_report: Path
    prices_path: Path
    teachers: Path | None = None  # folder of teacher pipelines
    llm_config: Path | None = None
    gold: Path | None = None  # gold DocBin: strict F1 of each encoder
    notes: int = 300  # real notes in the throughput sample
    llm_notes: int = 6  # notes the local LLM teacher labels for its s/note
    long_notes: int = 10_000  # varied notes in the long run that watches resident memory
    untrimmed_notes: int = 2000  # of those, in the run without heap trimming (the before/after)
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32, 128])
    n_ctx: int = 2048
    log_dir: Path = Path("reports")  # where the local LLM server's log lives while it runs


# Each precision's encoder on each runtime installed; a precision's ceiling is its fastest runtime.
FAMILIES = {"float32": ["float32", "onnx-float32"], "int8": ["int8", "onnx-int8"], "bf16": ["bf16"]}


def family(variant: str) -> str:
    return next(f for f, members in FAMILIES.items() if variant in members)


def load_student(model: str, variant: str | None = None) -> Language:
    """The packaged default (variant None), another `clin_encoder_precision` setting ("float32",
    "onnx-float32", "onnx-int8"), or PyTorch's int8 ("int8", which pins float32 first)."""
    config = {"components": {PRECISION: {"precision": variant}}} if variant not in (None, "int8") else {}
    nlp = spacy.load(model, config=config)
    if variant == "int8":
        return quantize_encoder(nlp)
    nlp.get_pipe(PRECISION).apply()
    return nlp


def in_fresh_process(target: Callable[..., None], *args: Any) -> Any:
    """`target(*args, queue)` in a spawned process: its peak RSS and oneDNN state are its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _student(model: str, texts: list[str], batch_size: int, variant: str | None, out: mp.Queue) -> None:
    """The student at one batch size and, in turns with it, its encoder's ceiling (`ceiling` key)."""
    nlp = load_student(model, variant)
    loaded = peak_rss_mb()
    dtype = DTYPES.get(nlp.get_pipe(PRECISION).applied, torch.float32)  # torch int8: the rest float32
    run, ceiling, peak = student_and_ceiling(nlp, texts, batch_size, dtype=dtype)
    run["peak_rss_mb"] = round(peak, 1) if peak is not None else None  # while labelling
    run["peak_rss_mb_with_loading"] = round(max(loaded, peak or 0.0), 1)
    if batch_size == 1:  # stage by stage is batch size 1 (the packaged default)
        run["profile"] = stage_shares(nlp, texts[:50])
    run["ceiling"] = ceiling
    out.put(run)


def _long_run(model: str, texts: list[str], batch_size: int, trim_every: int | None, out: mp.Queue) -> None:
    """Resident memory over one long pass of varied notes (trim_every None: the model's default)."""
    config = {"components": {MEMORY: {"malloc_trim_every": trim_every}}} if trim_every is not None else {}
    nlp = spacy.load(model, config=config)
    list(nlp.pipe(texts[:batch_size], batch_size=batch_size))  # the cast and the first kernels
    reset = reset_peak_rss()
    trace = []
    for i, _ in enumerate(nlp.pipe(texts, batch_size=batch_size), 1):
        if i % 250 == 0 or i == len(texts):
            trace.append([i, round(rss_mb(), 1)])
    out.put({
        "notes": len(texts),
        "batch_size": batch_size,
        "malloc_trim_every": nlp.get_pipe(MEMORY).malloc_trim_every,
        "malloc_trim_margin_mb": nlp.get_pipe(MEMORY).malloc_trim_margin_mb,
        "peak_rss_mb": round(peak_rss_mb(), 1) if reset else None,
        "rss_mb_by_notes": trace,
    })  # fmt: skip


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "device": "cpu",
        "native_bf16": cpu_has_bf16(),
    }


def strict_f1(nlp: Language, gold_docs: Sequence[Doc], labels: Sequence[str] = LABELS) -> dict[str, float]:
    """Strict F1 per label of the pipeline's entities on gold docs' texts."""
    preds = [d.ents for d in nlp.pipe(g.text for g in gold_docs)]
    scores = score(zip(preds, gold_docs, strict=True), labels)
    return {lab: scores[lab]["strict"]["f"] for lab in labels}


def variant_row(model: str, texts: list[str], batch_size: int, variant: str, default_wps: float) -> dict:
    """One other encoder at the default batch size, beside the default and its own runtime's
    ceiling (`precision_ceilings` then holds it to its precision's fastest runtime)."""
    run = in_fresh_process(_student, model, texts, batch_size, variant)
    own_ceiling = run.pop("ceiling")
    return {
        **run,
        "precision": family(variant),
        "runtime": "onnxruntime" if variant.startswith("onnx-") else "pytorch",
        "own_runtime_ceiling_words_per_second": own_ceiling["words_per_second"],
        "speedup_over_default": round(run["words_per_second"] / default_wps, 2),
    }


def fastest_ceiling(data: dict[str, Any], precision: str, own: dict[str, float]) -> tuple[float, str]:
    """The fastest raw forward pass of a precision on any runtime measured, and whose it was:
    `own` (variant -> words/s) beside the variants' rows in `data`."""
    runs = dict(own)
    for v in FAMILIES[precision]:
        if f"student_{v}" in data:
            runs[v] = data[f"student_{v}"]["own_runtime_ceiling_words_per_second"]
    best = max(runs, key=runs.__getitem__)
    return runs[best], best


def precision_ceilings(data: dict[str, Any], variants: list[str], default: dict[str, float]) -> None:
    """Each variant against the fastest raw forward pass of its precision on any runtime measured,
    the default's own (`default`: its variant -> words/s) included."""
    for variant in variants:
        q = data[f"student_{variant}"]
        own = {v: w for v, w in default.items() if family(v) == q["precision"]}
        q["ceiling_words_per_second"], q["ceiling_from"] = fastest_ceiling(data, q["precision"], own)
        q["ratio_to_ceiling"] = round(q["words_per_second"] / q["ceiling_words_per_second"], 3)


def run_cpu_benchmark(b: CpuBenchmark, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Every number of reports/benchmark.json, in the order the report lists them."""
    sample = benchmark_notes(b.unlabelled_dir, b.notes)
    texts = [d.text for d in sample]
    words = sum(word_count(d) for d in sample)
    prices = {k: dict(v) for k, v in Config().from_disk(b.prices_path).items()}
    data: dict[str, Any] = {
        "machine": machine(),
        "sample": {"notes": len(texts), "words": words, "mean_words_per_note": round(words / len(texts), 1)},
        "model": b.model,
    }
    echo(f"sample: {len(texts)} notes, {words:,} words; torch threads {torch.get_num_threads()}")
    # One fresh process per batch size: each peak RSS is that setting's own; each ceiling timed in
    # turns with its student.
    student_runs = [in_fresh_process(_student, b.model, texts, n, None) for n in b.batch_sizes]
    ceiling_runs = [r.pop("ceiling") for r in student_runs]
    best_s = max(student_runs, key=lambda r: r["words_per_second"])
    best_c = max(ceiling_runs, key=lambda r: r["words_per_second"])
    student_nlp = load_student(b.model)  # in this process: its defaults, and the per-note LLM comparison
    precision = student_nlp.get_pipe(PRECISION).applied
    default_batch = student_nlp.batch_size
    # The headline is the model as shipped: its own nlp.pipe batch size, not the fastest row.
    default_run = next(r for r in student_runs if r["batch_size"] == default_batch)
    data["student"] = {
        **default_run,
        "default_batch_size": default_batch,
        "precision": precision,
        "fastest_batch_size": best_s["batch_size"],
        "by_batch_size": student_runs,
    }
    # Memory over a long run of varied notes, with the model's heap trimming and without it
    long_texts = varied_notes(b.unlabelled_dir, b.long_notes)
    data["student"]["long_run"] = in_fresh_process(_long_run, b.model, long_texts, default_batch, None)
    data["student"]["long_run_without_trim"] = in_fresh_process(
        _long_run, b.model, long_texts[: b.untrimmed_notes], default_batch, 0
    )
    # every other precision and runtime, float32 on PyTorch only where the default is not that;
    # bf16 only where the CPU has it natively (PyTorch emulates it elsewhere, slower than float32)
    native = data["machine"]["native_bf16"]
    candidates = ("float32", "onnx-float32", "int8", "onnx-int8") + (("bf16",) if native else ())
    variants = [v for v in candidates if v != precision]
    variant_nlp = {}
    for variant in variants:
        data[f"student_{variant}"] = variant_row(
            b.model, texts, default_batch, variant, default_run["words_per_second"]
        )
        variant_nlp[variant] = load_student(b.model, variant)
    same_batch = next(r for r in ceiling_runs if r["batch_size"] == default_batch)["words_per_second"]
    precision_ceilings(data, variants, {precision: same_batch})
    # the path "auto" takes on a CPU without native bf16 (the default itself on such a CPU),
    # against PyTorch float32, timed in turns in this process
    no_bf16 = student_nlp.get_pipe(PRECISION).without_bf16
    path_nlp = student_nlp if precision == no_bf16 else variant_nlp.get(no_bf16)
    if path_nlp is not None and "float32" in variant_nlp:
        data["no_bf16_speedup_in_turns"] = {
            "variant": no_bf16,
            **speedup_in_turns(path_nlp, variant_nlp["float32"], texts, default_batch),
        }
    # on a CPU with native bf16, the default against PyTorch bf16 (its default until 2026-12-07)
    if "bf16" in variant_nlp:
        data["bf16_speedup_in_turns"] = {
            "variant": precision,
            **speedup_in_turns(student_nlp, variant_nlp["bf16"], texts, default_batch),
        }
    if f"student_{no_bf16}" in data and "student_float32" in data:
        path = data[f"student_{no_bf16}"]
        data["no_bf16_path"] = {
            "variant": no_bf16,
            "words_per_second": path["words_per_second"],
            "speedup_over_float32": round(
                path["words_per_second"] / data["student_float32"]["words_per_second"], 2
            ),
            "ratio_to_ceiling": path["ratio_to_ceiling"],
        }
    if b.gold:
        gold_docs = list(DocBin().from_disk(b.gold).get_docs(spacy.blank("en").vocab))
        for key, nlp in [("student", student_nlp)] + [(f"student_{v}", n) for v, n in variant_nlp.items()]:
            data[key][f"{b.gold.stem}_strict_f1"] = strict_f1(nlp, gold_docs)
    data["ceiling"] = {**best_c, "by_batch_size": ceiling_runs}
    fastest, _ = fastest_ceiling(data, family(precision), {precision: same_batch})
    data["ceiling"]["default_precision_fastest_words_per_second"] = fastest
    data["ratio_to_ceiling"] = round(default_run["words_per_second"] / fastest, 3)
    data["ratio_to_best_ceiling"] = round(best_s["words_per_second"] / best_c["words_per_second"], 3)

    data["teachers"] = ontology_speed(b.teachers, texts)
    if b.llm_config:
        # each student at the batch size its throughput row was measured at
        students = {"default": student_nlp, **variant_nlp}
        data["teachers"][b.llm_config.stem] = llm_per_note(
            b.llm_config, sample[: b.llm_notes], sample, students, default_batch, b.n_ctx, b.log_dir
        )
    costs, basis = cost_per_1k_notes(b.llm_report, prices, default_run["words_per_second"])
    data["cost_per_1k_notes_usd"] = costs
    data["cost_basis"] = basis
    data["gpt4o_cost_ratio"] = round(costs["gpt-4o"] / costs["student_cpu"], 1)
    return data
