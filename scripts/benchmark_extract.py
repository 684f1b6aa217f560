"""Step `benchmark-extract`: `clin-distill extract` over the unlabelled notes -> reports/extract.{json,md}.

In one run on one machine: the packaged model's own `nlp.pipe` (no reading, ConText, linking
records or writing) as the reference, the single-process extraction (JSONL in, JSONL out), and
the same extraction on a local Ray instance with 1 and 2 actors, whose outputs must be identical
to the single-process one.
"""

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin

from clin_distill.corpora.stats import word_count
from clin_distill.extract.notes import read_notes
from clin_distill.extract.output import Output
from clin_distill.extract.run import extract
from clin_distill.reports import write_report

# Peak RSS of a fresh process that loads a pipeline and labels the sample notes.
MEMORY_PROBE = """
import json, resource, sys
import spacy
import clin_distill.extract.pipeline as p
model, notes, kind = sys.argv[1], sys.argv[2], sys.argv[3]
texts = [json.loads(line)["text"] for line in open(notes, encoding="utf-8")]
if kind == "extract":
    nlp = p.build_pipeline(model)
else:
    nlp = spacy.load(model, exclude=["clin_linker"] if kind == "model_without_linker" else [])
for _ in nlp.pipe(texts, batch_size=nlp.batch_size):
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss_mb(model: Path, notes: Path, kind: str) -> float:
    cmd = [sys.executable, "-c", MEMORY_PROBE, str(model), str(notes), kind]
    return round(float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1]), 1)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(
    model: Path,
    unlabelled: Path,
    report: Path,
    benchmark: Path = typer.Option(None, help="reports/benchmark.json, quoted beside this run"),
    batch_size: int = typer.Option(0, help="nlp.pipe batch size; 0: the model's own, as `extract` uses"),
    ray_workers: list[int] = typer.Option([1, 2]),
) -> None:
    nlp_probe = spacy.blank("en")
    notes = []
    for path in sorted(unlabelled.glob("*.spacy")):
        for i, doc in enumerate(DocBin().from_disk(path).get_docs(nlp_probe.vocab)):
            notes.append({"id": f"{path.stem}/{doc.user_data.get('doc_id', i)}", "text": doc.text})
    with tempfile.TemporaryDirectory(prefix="clin-extract-bench-") as tmp:
        tmp = Path(tmp)
        notes_file = tmp / "notes.jsonl"
        notes_file.write_text("".join(json.dumps(n) + "\n" for n in notes), encoding="utf-8")
        sample = tmp / "sample.jsonl"  # every 8th note: all three sources
        sample.write_text("".join(json.dumps(n) + "\n" for n in notes[::8]), encoding="utf-8")
        kinds = ("model_without_linker", "model", "extract")
        memory = {kind: peak_rss_mb(model, sample, kind) for kind in kinds}
        # Reference: the packaged model alone, same notes, same batch size, same process.
        nlp = spacy.load(model)
        batch_size = batch_size or nlp.batch_size
        texts = [n["text"] for n in notes]
        list(nlp.pipe(texts[:batch_size], batch_size=batch_size))  # warm-up
        start = time.perf_counter()
        words = sum(word_count(d) for d in nlp.pipe(texts, batch_size=batch_size))
        model_seconds = time.perf_counter() - start
        del nlp
        runs = {}
        single = tmp / "single.jsonl"
        summary = extract(read_notes(notes_file), Output(single, "jsonl"), str(model), batch_size)
        runs["single process"] = {**summary.as_dict(), "identical_to_single": True}
        for workers in ray_workers:
            out = tmp / f"ray{workers}.jsonl"
            s = extract(
                read_notes(notes_file), Output(out, "jsonl"), str(model), batch_size,
                ray_address="local", ray_workers=workers,
            )  # fmt: skip
            runs[f"ray, {workers} worker{'s' if workers > 1 else ''}"] = {
                **s.as_dict(),
                "identical_to_single": _digest(out) == _digest(single),
            }
        import ray

        ray.shutdown()
    model_wps = words / model_seconds
    single_wps = runs["single process"]["words"] / runs["single process"]["seconds"]
    committed = json.loads(benchmark.read_text())["student"] if benchmark and benchmark.exists() else None
    data = {
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.machine()},
        "notes": len(notes),
        "words": words,
        "batch_size": batch_size,
        "model_nlp_pipe_words_per_second": round(model_wps, 1),
        "ratio_to_model": round(single_wps / model_wps, 3),
        "peak_rss_mb": memory,
        "benchmark_student_words_per_second": committed and committed["words_per_second"],
        "runs": runs,
    }
    rows = [["packaged model, `nlp.pipe` only", f"{model_seconds:.1f}", f"{model_wps:,.0f}", "1.00", "-", ""]]
    for name, r in runs.items():
        wps = r["words"] / r["seconds"]
        rows.append(
            [
                f"`extract`, {name}", f"{r['seconds']:.1f}", f"{wps:,.0f}", f"{wps / model_wps:.2f}",
                f"{r['notes']:,} / {r['entities']:,} / {r['errors']}",
                "yes" if r["identical_to_single"] else "**no**",
            ]
        )  # fmt: skip
    write_report(
        report,
        data,
        "Batch extraction speed",
        f"Written by `weasel run benchmark-extract`: {len(notes):,} unlabelled notes ({words:,} words) as "
        f"JSONL, batch size {batch_size}, on {os.cpu_count()} CPU cores. `extract` = reading, the packaged "
        "model, `clin_linker`, medspaCy sectionizer + ConText, and writing JSONL; its time excludes loading "
        "the pipeline (Ray: actor start-up included). Ray runs are a local instance, one CPU per actor.",
        ["run", "seconds", "words/s", "ratio to nlp.pipe", "notes / entities / errors", "output = single"],
        rows,
        after=[
            "",
            f"Single-process extraction runs at {data['ratio_to_model']:.2f}x the packaged model's own "
            "`nlp.pipe` words/s in the same run. Peak RSS of a fresh process labelling every 8th note "
            f"({len(notes[::8])}): packaged model {memory['model']:,.0f} MB (without `clin_linker` "
            f"{memory['model_without_linker']:,.0f} MB), extraction pipeline {memory['extract']:,.0f} MB"
            + (
                f" (the committed reports/benchmark.md measured {committed['words_per_second']:,.0f} words/s "
                f"at batch size {committed['batch_size']}, {committed['precision']}, on its machine)."
                if committed
                else "."
            ),
        ],
    )
    typer.echo(json.dumps({k: v for k, v in data.items() if k != "runs"}))


if __name__ == "__main__":
    typer.run(main)
