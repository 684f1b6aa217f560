"""Step `benchmark`: the packaged student against the hardware ceiling and against its teachers,
in one run on one machine -> reports/benchmark.{json,md}.

The student and the ceiling each run in a fresh process, so peak RSS is the student's own.
The packaged default runs its encoder at the precision its `clin_encoder_precision` component
resolves ("auto": bf16 where the CPU has native bf16, else float32); the float32 encoder (where
that differs) and the opt-in int8 encoder (clin_distill.student.int8) are measured beside it, each
with its strict F1 on MACCROBAT test, so a speed-up is never reported without its accuracy cost.
"""

import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import spacy
import torch
import typer
from confection import Config
from spacy.tokens import DocBin

from clin_distill.corpora.stats import word_count
from clin_distill.labels import LABELS
from clin_distill.llm.label import cost_per_1k, label_docs, load_teacher, model_settings
from clin_distill.llm.server import llama_server, smollm2_gguf
from clin_distill.reports import write_report
from clin_distill.scoring import score
from clin_distill.speed import (
    benchmark_notes,
    ceiling_throughput,
    peak_rss_mb,
    profile_shares,
    reset_peak_rss,
    rss_mb,
    student_throughput,
)
from clin_distill.student.int8 import quantize_encoder
from clin_distill.student.precision import FACTORY as PRECISION
from clin_distill.student.precision import cpu_has_bf16
from clin_distill.teachers.labelling import load_teachers, words_per_second

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}


def load_student(model: str, variant: str | None = None):
    """The packaged default (variant None), its float32 encoder, or int8 (which pins float32 first)."""
    config = {"components": {PRECISION: {"precision": "float32"}}} if variant == "float32" else {}
    nlp = spacy.load(model, config=config)
    if variant == "int8":
        return quantize_encoder(nlp)
    nlp.get_pipe(PRECISION).apply()
    return nlp


def _student(model: str, texts: list[str], batch_size: int, variant: str | None, out: mp.Queue) -> None:
    nlp = load_student(model, variant)
    loaded = peak_rss_mb()
    reset = reset_peak_rss()
    run = student_throughput(nlp, texts, batch_size)
    run["peak_rss_mb"] = round(peak_rss_mb(), 1) if reset else None  # while labelling
    run["peak_rss_mb_with_loading"] = round(max(loaded, peak_rss_mb()), 1)
    run["profile"] = profile_shares(nlp, texts[:50], batch_size)
    out.put(run)


def _long_run(model: str, texts: list[str], batch_size: int, trim_every: int | None, out: mp.Queue) -> None:
    """Resident memory over one long pass of varied notes (trim_every None: the model's default)."""
    config = {"components": {PRECISION: {"malloc_trim_every": trim_every}}} if trim_every is not None else {}
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
        "malloc_trim_every": nlp.get_pipe(PRECISION).malloc_trim_every,
        "malloc_trim_margin_mb": nlp.get_pipe(PRECISION).malloc_trim_margin_mb,
        "peak_rss_mb": round(peak_rss_mb(), 1) if reset else None,
        "rss_mb_by_notes": trace,
    })  # fmt: skip


def _ceiling(
    model: str, texts: list[str], batch_sizes: list[int], variant: str | None, out: mp.Queue
) -> None:
    nlp = load_student(model, variant)
    dtype = DTYPES[nlp.get_pipe(PRECISION).applied]  # int8: quantized Linears, the rest float32
    out.put([ceiling_throughput(nlp, texts, b, dtype=dtype) for b in batch_sizes])


def in_fresh_process(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(
    model: str,
    unlabelled_dir: Path,
    llm_report: Path,
    report: Path,
    prices_path: Path = typer.Option(..., "--prices"),
    teachers: list[Path] = typer.Option([], "--teacher"),
    llm_config: Path = typer.Option(None, "--llm-config"),
    gold: Path = typer.Option(None, "--gold", help="Gold DocBin: strict F1 of each encoder"),
    notes: int = typer.Option(300, help="Real notes in the throughput sample"),
    llm_notes: int = typer.Option(6, help="Notes the local LLM teacher labels for its s/note"),
    long_notes: int = typer.Option(2000, help="Notes in the long run that watches resident memory"),
    batch_sizes: list[int] = typer.Option([1, 32, 128], "--batch-size"),
    n_ctx: int = typer.Option(2048),
) -> None:
    vocab = spacy.blank("en").vocab
    sample = benchmark_notes(unlabelled_dir, notes)
    texts = [d.text for d in sample]
    words = sum(word_count(d) for d in sample)
    prices = {k: dict(v) for k, v in Config().from_disk(prices_path).items()}
    native_bf16 = cpu_has_bf16()
    data: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
            "device": "cpu",
            "native_bf16": native_bf16,
        },
        "sample": {"notes": len(texts), "words": words, "mean_words_per_note": round(words / len(texts), 1)},
        "model": model,
    }
    typer.echo(f"sample: {len(texts)} notes, {words:,} words; torch threads {torch.get_num_threads()}")
    # One fresh process per batch size: each peak RSS is that setting's own.
    student = {"runs": [in_fresh_process(_student, model, texts, b, None) for b in batch_sizes]}
    ceiling = {"runs": in_fresh_process(_ceiling, model, texts, batch_sizes, None)}
    best_s = max(student["runs"], key=lambda r: r["words_per_second"])
    best_c = max(ceiling["runs"], key=lambda r: r["words_per_second"])
    student_nlp = load_student(model)  # in this process: its defaults, and the per-note LLM comparison
    precision = student_nlp.get_pipe(PRECISION).applied
    default_batch = student_nlp.batch_size
    # The headline is the model as shipped: its own nlp.pipe batch size, not the fastest row.
    default_run = next(r for r in student["runs"] if r["batch_size"] == default_batch)
    data["student"] = {
        **default_run,
        "default_batch_size": default_batch,
        "precision": precision,
        "fastest_batch_size": best_s["batch_size"],
        "by_batch_size": student["runs"],
    }
    # Memory over a long run of varied notes, with the model's heap trimming and without it
    long_texts = [d.text for d in benchmark_notes(unlabelled_dir, long_notes)]
    for key, trim in (("long_run", None), ("long_run_without_trim", 0)):
        data["student"][key] = in_fresh_process(_long_run, model, long_texts, default_batch, trim)
    # float32 separately only where the default resolved to something else
    variants = ["float32", "int8"] if precision != "float32" else ["int8"]
    variant_nlp = {}
    for variant in variants:
        run = in_fresh_process(_student, model, texts, default_batch, variant)
        own_ceiling = in_fresh_process(_ceiling, model, texts, [default_batch], variant)[0]
        variant_nlp[variant] = load_student(model, variant)
        data[f"student_{variant}"] = {
            **run,
            "ceiling_words_per_second": own_ceiling["words_per_second"],
            "ratio_to_ceiling": round(run["words_per_second"] / own_ceiling["words_per_second"], 3),
            "speedup_over_default": round(run["words_per_second"] / default_run["words_per_second"], 2),
        }
    if gold:
        gold_docs = list(DocBin().from_disk(gold).get_docs(vocab))
        for key, nlp in [("student", student_nlp)] + [(f"student_{v}", n) for v, n in variant_nlp.items()]:
            preds = [d.ents for d in nlp.pipe(g.text for g in gold_docs)]
            scores = score(zip(preds, gold_docs, strict=True), LABELS)
            data[key][f"{gold.stem}_strict_f1"] = {lab: scores[lab]["strict"]["f"] for lab in LABELS}
    data["ceiling"] = {**best_c, "by_batch_size": ceiling["runs"]}
    same_batch = next(r for r in ceiling["runs"] if r["batch_size"] == default_batch)
    data["ratio_to_ceiling"] = round(default_run["words_per_second"] / same_batch["words_per_second"], 3)
    data["ratio_to_best_ceiling"] = round(best_s["words_per_second"] / best_c["words_per_second"], 3)

    data["teachers"] = {}
    for name, nlp in load_teachers(teachers).items():
        wps, _ = words_per_second(nlp, texts, repeats=2)
        data["teachers"][name] = {"words_per_second": round(wps, 1)}
    if llm_config:
        name = llm_config.stem
        model_cfg = model_settings(llm_config)
        few = sample[:llm_notes]
        log = report.parent / f".{name}-server.log"
        # Timed as the student is: after a warm-up (another note: the server's first request pays
        # for loading), best of two passes.
        with llama_server(smollm2_gguf(), model_cfg["endpoint"], model_cfg["name"], n_ctx, log):
            nlp = load_teacher(llm_config, Path("corpus/llm_cache"), overrides={"paths.cache": None})
            list(label_docs(nlp, [sample[len(few) % len(sample)].copy()]))
            llm_passes = []
            for _ in range(2):
                start = time.perf_counter()
                records = [r for _, r in label_docs(nlp, [d.copy() for d in few])]
                llm_passes.append(time.perf_counter() - start)
            llm_seconds = min(llm_passes)
        log.unlink(missing_ok=True)
        seconds = {}
        # each at the batch size its throughput row was measured at
        timed = [("default", student_nlp, default_batch)] + [
            (v, n, default_batch) for v, n in variant_nlp.items()
        ]
        # measured as the throughput rows are: after a warm-up, best of repeated passes (one pass
        # over a few notes takes about 0.3 s, too short to time once)
        for key, nlp, batch in timed:
            seconds[key] = student_throughput(nlp, [d.text for d in few], batch, repeats=5)["seconds"]
        student_seconds = seconds["default"]
        data["teachers"][name] = {
            "notes": len(few),
            "seconds_per_note": round(llm_seconds / len(few), 2),
            "seconds_per_note_by_pass": [round(t / len(few), 2) for t in llm_passes],
            "words_per_second": round(sum(r["words"] for r in records) / llm_seconds, 1),
            "failed": sum(r["status"] == "failed" for r in records),
            "student_seconds_per_note_same_notes": round(student_seconds / len(few), 4),
            "student_speedup_per_note": round(llm_seconds / student_seconds, 1),
        }
        for variant in variant_nlp:
            data["teachers"][name][f"student_{variant}_seconds_per_note_same_notes"] = round(
                seconds[variant] / len(few), 4
            )
            data["teachers"][name][f"student_{variant}_speedup_per_note"] = round(
                llm_seconds / seconds[variant], 1
            )

    # Cost per 1,000 notes of the length the LLM accounting measured: the student on a CPU
    # instance at the hourly price in the price table; hosted LLMs from their token counts.
    llm = json.loads(llm_report.read_text())
    measured = next(t["accounting"] for t in llm["teachers"].values() if t["accounting"].get("requests"))
    note_words = measured["words"] / measured["notes"]
    student_s_per_note = note_words / default_run["words_per_second"]
    costs = {"student_cpu": round(student_s_per_note * 1000 / 3600 * prices["cpu"]["usd_per_hour"], 5)}
    costs.update({m: cost_per_1k(measured, p) for m, p in prices.items() if m != "cpu"})
    for name, t in llm["teachers"].items():
        costs[f"{name}_cpu"] = t["accounting"].get("cost_per_1k_notes_usd")
    data["cost_per_1k_notes_usd"] = costs
    data["cost_basis"] = {
        "mean_words_per_note": round(note_words, 1),
        "cpu_usd_per_hour": prices["cpu"]["usd_per_hour"],
        "cpu_price_source": prices["cpu"]["source"],
        "hosted_tokens": "mean prompt/completion tokens per note measured by label-llm for our prompt "
        "(local model's tokenizer; hosted tokenizers differ by a few percent)",
    }
    data["gpt4o_cost_ratio"] = round(costs["gpt-4o"] / costs["student_cpu"], 1)
    rows = [
        [f"student (spaCy; packaged default, {precision})", r["batch_size"],
         f"{r['words_per_second']:,.0f}", f"{r['notes_per_second']:.1f}",
         f"{r['peak_rss_mb']} ({r['peak_rss_mb_with_loading']:,.0f})"]
        for r in student["runs"]
    ] + [
        ["ceiling (PyTorch forward only)", r["batch_size"], f"{r['words_per_second']:,.0f}", "", ""]
        for r in ceiling["runs"]
    ]  # fmt: skip
    for variant in variant_nlp:
        q = data[f"student_{variant}"]
        rows += [
            [f"student, {variant} encoder{' (opt-in)' * (variant == 'int8')}", q["batch_size"],
             f"{q['words_per_second']:,.0f}",
             f"{q['notes_per_second']:.1f}", f"{q['peak_rss_mb']} ({q['peak_rss_mb_with_loading']:,.0f})"],
            [f"ceiling, {variant} encoder", q["batch_size"], f"{q['ceiling_words_per_second']:,.0f}", "", ""],
        ]  # fmt: skip
    rows += [
        [f"teacher {n}", "", f"{t['words_per_second']:,.0f}", "", ""] for n, t in data["teachers"].items()
    ]
    after = [
        "",
        f"- ratio_to_ceiling (packaged default, batch size {default_batch}, {precision}): "
        f"**{data['ratio_to_ceiling']}**; fastest student row (batch size {best_s['batch_size']}) to the "
        f"fastest ceiling row: {data['ratio_to_best_ceiling']}",
        f"- student peak RSS while labelling: {default_run['peak_rss_mb']} MB at batch size {default_batch} "
        f"({default_run['peak_rss_mb_with_loading']:,.0f} MB counting the load); "
        f"wordpieces per word: {best_c['wordpieces_per_word']}",
        *(
            f"- {'without heap trimming' if r['malloc_trim_every'] == 0 else 'long run'}: "
            f"{r['notes']:,} varied notes (batch size {r['batch_size']}, malloc_trim_every "
            f"{r['malloc_trim_every']}, malloc_trim_margin_mb {r['malloc_trim_margin_mb']}): "
            f"peak RSS {r['peak_rss_mb']} MB, resident MB by notes labelled "
            + ", ".join(f"{n}: {m:,.0f}" for n, m in r["rss_mb_by_notes"])
            for r in (data["student"]["long_run"], data["student"]["long_run_without_trim"])
        ),
        "- cost per 1,000 notes (USD): " + ", ".join(f"{k} {v}" for k, v in costs.items()),
        f"- GPT-4o / student cost: {data['gpt4o_cost_ratio']}x",
        f"- profile of the student at batch size {default_batch} (cProfile, 50 notes): "
        + ", ".join(f"{k} {v:.1%}" for k, v in default_run["profile"].items() if k != "seconds")
        + "; the encoder's forward pass is what remains, and the ceiling times exactly that",
        "- before/after: the pipeline's `nlp.pipe` default batch size was 32 (peak RSS "
        + ", ".join(f"{r['peak_rss_mb']:,.0f} MB at {r['batch_size']}" for r in student["runs"])
        + f"); it is now {default_batch}, for memory (fastest too with a float32 encoder)",
        f'- the packaged default\'s encoder precision (`clin_encoder_precision`, "auto"): **{precision}** '
        f"(this CPU {'has' if native_bf16 else 'lacks'} native bf16); before, it always ran in float32",
    ]
    for variant in variant_nlp:
        q = data[f"student_{variant}"]
        how = "`clin_distill.student.int8.quantize_encoder`, opt-in" if variant == "int8" else "set in config"
        after.append(
            f"- {variant} encoder ({how}): {q['speedup_over_default']}x "
            f"the default's words/s, ratio to its own {variant} ceiling {q['ratio_to_ceiling']}"
        )
        if gold:
            after.append(
                f"- strict F1 on {gold.stem}, default ({precision}) vs {variant}: "
                + ", ".join(
                    f"{lab} {data['student'][f'{gold.stem}_strict_f1'][lab]:.3f} vs "
                    f"{q[f'{gold.stem}_strict_f1'][lab]:.3f}"
                    for lab in LABELS
                )
            )
    if llm_config:
        t = data["teachers"][llm_config.stem]
        after.append(
            f"- {llm_config.stem}: {t['seconds_per_note']} s/note vs student "
            f"{t['student_seconds_per_note_same_notes']} s/note on the same {t['notes']} notes: "
            f"{t['student_speedup_per_note']}x (LLM: best of two passes after a warm-up note; s/note by pass "
            + ", ".join(str(x) for x in t["seconds_per_note_by_pass"])
            + ")"
            + "".join(
                f"; {v} encoder: {t[f'student_{v}_seconds_per_note_same_notes']} s/note, "
                f"{t[f'student_{v}_speedup_per_note']}x"
                for v in variant_nlp
            )
        )
    intro = (
        f"Written by `weasel run benchmark` on {data['machine']['cpu_count']} CPU cores "
        f"({data['machine']['torch_threads']} torch threads): {len(texts)} real notes, {words:,} words, "
        "raw text in, entities out."
    )
    write_report(
        report,
        data,
        "Speed and cost",
        intro,
        ["what", "batch size", "words/s", "notes/s", "peak RSS MB labelling (with load)"],
        rows,
        after,
    )


if __name__ == "__main__":
    typer.run(main)
