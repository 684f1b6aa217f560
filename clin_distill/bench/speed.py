"""Throughput of the student, and the ceiling it is held to: the same encoder's plain PyTorch
forward pass over exactly the sequences the student feeds it (same windows, same wordpieces,
same batch padding), with no spaCy around it."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import spacy
import torch
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.util import minibatch
from spacy_transformers.util import batch_by_length

from ..corpora.notes import hash_sample
from ..corpora.stats import word_count
from ..student.windows import RUNNER_ATTR, encoder_runner


def benchmark_notes(unlabelled_dir: Path, n: int | None) -> list[Doc]:
    """The real notes every speed measurement uses (CPU and GPU alike): the same hash sample of
    the unlabelled DocBins on every run and machine."""
    vocab = spacy.blank("en").vocab
    docs = (d for p in sorted(unlabelled_dir.glob("*.spacy")) for d in DocBin().from_disk(p).get_docs(vocab))
    return hash_sample(docs, n)


def varied_notes(unlabelled_dir: Path, n: int) -> list[str]:
    """`n` real notes of ever new lengths for a long memory run, more than the corpus holds: the
    hash-ordered notes as they are, then passes that join the tail of note i (from a point that
    moves with the pass) to the head of note i + pass, so the lengths keep changing."""
    texts = [d.text for d in benchmark_notes(unlabelled_dir, None)]
    out = list(texts[:n])
    k = 0
    while len(out) < n:
        k += 1
        for i, text in enumerate(texts):
            other = texts[(i + k) % len(texts)]
            cut, head = len(text) * (k % 5) // 5, len(other) * (1 + k % 3) // 4
            out.append(text[cut:] + "\n\n" + other[:head])
            if len(out) == n:
                break
    return out


def _status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (Linux) in MB, or None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (since start, or since `reset_peak_rss`)."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB


def rss_mb() -> float:
    """This process's resident memory now (Linux; 0.0 where /proc is missing)."""
    return _status_mb("VmRSS") or 0.0


def reset_peak_rss() -> bool:
    """Restart the peak count (Linux: "5" to /proc/self/clear_refs), so that the peak of labelling
    is measured apart from the peak of loading, when spacy-transformers briefly holds several
    copies of the weights while deserialising them."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def student_throughput(
    nlp: Language, texts: Sequence[str], batch_size: int, repeats: int = 2, warm_up: bool = True
) -> dict[str, Any]:
    """Raw text in, entities out (tokenizer included), best of `repeats` after one warm-up batch."""
    if warm_up:
        list(nlp.pipe(texts[:batch_size], batch_size=batch_size))
    best, words = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        words = sum(word_count(doc) for doc in nlp.pipe(texts, batch_size=batch_size))
        best = min(best, time.perf_counter() - start)
    return _student_row(batch_size, best, words, len(texts))


def _student_row(batch_size: int, seconds: float, words: int, notes: int) -> dict[str, Any]:
    """A student row: `notes` notes of `words` words labelled in `seconds`."""
    return {
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "words_per_second": round(words / seconds, 1),
        "notes_per_second": round(notes / seconds, 2),
    }


def encoder_batch_groups(
    nlp: Language, texts: Sequence[str], batch_size: int
) -> tuple[list[list[dict]], int]:
    """The padded wordpiece batches the student's transformer encodes for these texts, per pipe
    batch of `batch_size` notes, built the way spacy-transformers builds them (docs grouped by
    length up to `max_batch_items` tokens per pipe batch; each group's strided windows tokenized
    and padded to the longest); and the texts' word count."""
    trf_pipe = nlp.get_pipe("transformer")
    trf = trf_pipe.model
    docs = [nlp.make_doc(t) for t in texts]
    groups = []
    for outer in minibatch(docs, batch_size):
        group = []
        for indices in batch_by_length(outer, trf_pipe.cfg["max_batch_items"]):
            spans = [
                s for doc_spans in trf.attrs["get_spans"]([outer[i] for i in indices]) for s in doc_spans
            ]
            group.append(trf.tokenizer([s.text for s in spans], add_special_tokens=True, padding="longest",
                                       return_tensors="pt"))  # fmt: skip
        groups.append(group)
    return groups, sum(word_count(d) for d in docs)


def encoder_batches(nlp: Language, texts: Sequence[str], batch_size: int) -> tuple[list[dict], int]:
    """`encoder_batch_groups` as one list: every batch the encoder runs for these texts, in order."""
    groups, words = encoder_batch_groups(nlp, texts, batch_size)
    return [b for group in groups for b in group], words


def _ceiling_stats(tensors: Sequence[tuple], seconds: float, words: int, batch_size: int) -> dict[str, Any]:
    """A ceiling row: the (input_ids, attention_mask) batches the encoder ran, in `seconds`."""
    tokens = sum(int(m.sum()) for _, m in tensors)
    return {
        "batch_size": batch_size,
        "transformer_batches": len(tensors),
        "wordpieces": tokens,
        "padded_wordpieces": sum(m.numel() for _, m in tensors),
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "wordpieces_per_word": round(tokens / words, 3),
        "words_per_second": round(words / seconds, 1),
    }


def student_and_ceiling(
    nlp: Language, texts: Sequence[str], batch_size: int, rounds: int = 3, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, Any], dict[str, Any], float | None]:  # fmt: skip
    """The student's throughput and its encoder's ceiling at one batch size, timed in turns batch by
    batch in one process: the student labels one `nlp.pipe` batch of notes from its stream, the
    bare encoder runs that batch's wordpiece batches, and the order flips with every batch, so that
    both see the same moment of the machine. On the shared 2-core VM words/s drift by 10-20% within
    a minute: whole 300-note passes timed in turns gave ratios from .65 to .85 for the same code,
    batch by batch .78-.79 (reports/experiments.md, 2026-12-07). Each of `rounds` rounds covers
    every note; the round in which the student was fastest is reported, with its own ceiling. Also
    returns the peak RSS (MB) of a first pass of the student alone, before any ceiling ran."""
    list(nlp.pipe(texts[:batch_size], batch_size=batch_size))  # warm-up
    groups, words = encoder_batch_groups(nlp, texts, batch_size)  # the ceiling's input, built once
    reset = reset_peak_rss()
    for _ in nlp.pipe(texts, batch_size=batch_size):
        pass  # each doc dropped as a user's loop drops it: holding 300 docs' encoder outputs adds ~170 MB
    peak = peak_rss_mb() if reset else None
    trf = nlp.get_pipe("transformer").model
    # the runtime `clin_encoder_precision` gave the encoder (ONNX Runtime), or the PyTorch module
    model = encoder_runner(trf) or trf.transformer.to(dtype=dtype).eval()
    tensors = [[(b["input_ids"], b["attention_mask"]) for b in group] for group in groups]
    best: list[float] | None = None
    with torch.inference_mode(), encoder_timer(nlp) as inside:
        for _ in range(rounds):
            stream = nlp.pipe(texts, batch_size=batch_size)
            spent = [0.0, 0.0, 0.0]  # student, ceiling, the student's encoder inside the pipeline
            for i, group in enumerate(tensors):
                for which in (0, 1) if i % 2 == 0 else (1, 0):
                    start, encoder = time.perf_counter(), inside[0]
                    if which == 0:
                        for _ in islice(stream, batch_size):
                            pass
                        spent[2] += inside[0] - encoder
                    else:
                        for input_ids, mask in group:
                            model(input_ids=input_ids, attention_mask=mask)
                    spent[which] += time.perf_counter() - start
            if best is None or spent[0] < best[0]:
                best = spent
    assert best is not None
    student = {
        **_student_row(batch_size, best[0], words, len(texts)),
        # the same round: the encoder inside the pipeline against the bare one, and the rest
        "encoder_seconds_in_pipeline": round(best[2], 3),
        "encoder_in_pipeline_to_bare": round(best[2] / best[1], 3),
        "outside_encoder_ms_per_note": round(1000 * (best[0] - best[2]) / len(texts), 2),
    }
    return student, _ceiling_stats([t for group in tensors for t in group], best[1], words, batch_size), peak


def speedup_in_turns(
    fast: Language, slow: Language, texts: Sequence[str], batch_size: int, rounds: int = 3
) -> dict[str, Any]:
    """`fast`'s words/s over `slow`'s, the two timed in turns in one process (best of `rounds`
    each): two students timed in separate processes minutes apart see a different machine (words/s
    drift by 10-20% on a shared VM), and their ratio carries that drift."""
    for nlp in (fast, slow):
        list(nlp.pipe(texts[:batch_size], batch_size=batch_size))  # warm-up
    runs: dict[str, list[float]] = {"fast": [], "slow": []}
    for _ in range(rounds):
        for key, nlp in (("fast", fast), ("slow", slow)):
            run = student_throughput(nlp, texts, batch_size, repeats=1, warm_up=False)
            runs[key].append(run["words_per_second"])
    best = {k: max(v) for k, v in runs.items()}
    return {
        "words_per_second": best["fast"],
        "baseline_words_per_second": best["slow"],
        "speedup": round(best["fast"] / best["slow"], 2),
        "rounds": rounds,
    }


@contextmanager
def encoder_timer(nlp: Language) -> Iterator[list[float]]:
    """Seconds spent in the student's encoder forward pass (the runner `clin_encoder_precision`
    set, or the PyTorch module's forward), summed into the yielded list's one item while the block
    runs; the encoder is restored after it."""
    trf = nlp.get_pipe("transformer").model
    spent = [0.0]
    runner = encoder_runner(trf)

    def timed(call):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start

        return wrapper

    if runner is not None:
        setattr(trf, RUNNER_ATTR, timed(runner))
    else:
        trf.transformer.forward = timed(trf.transformer.forward)
    try:
        yield spent
    finally:
        if runner is not None:
            setattr(trf, RUNNER_ATTR, runner)
        else:
            del trf.transformer.forward  # the instance attribute: the class's forward again


def stage_shares(nlp: Language, texts: Sequence[str], passes: int = 2) -> dict[str, float]:
    """Where the student's time goes at batch size 1, timed stage by stage (no profiler, whose
    per-call cost inflates Python-heavy stages): spaCy's tokenizer, each pipeline component, and
    within the transformer component its encoder's forward pass (the runner `clin_encoder_precision`
    set, or the PyTorch module). Shares of the last of `passes` passes (the first fills the
    tokenizer's and the linker's caches, as in the timed throughput runs). `encoder_forward` is
    what the ceiling times; everything else is overhead outside it."""
    with encoder_timer(nlp) as spent:
        for _ in range(passes):
            stages = dict.fromkeys(["spacy_tokenizer", *nlp.pipe_names], 0.0)
            spent[0] = 0.0
            for text in texts:
                start = time.perf_counter()
                doc = nlp.make_doc(text)
                stages["spacy_tokenizer"] += time.perf_counter() - start
                for name, proc in nlp.pipeline:
                    start = time.perf_counter()
                    doc = proc(doc)
                    stages[name] += time.perf_counter() - start
    total = sum(stages.values())
    stages["transformer"] -= spent[0]
    shares = {"encoder_forward": spent[0]} | {
        ("transformer_outside_encoder" if k == "transformer" else k): v for k, v in stages.items()
    }
    return {"seconds": round(total, 3)} | {k: round(v / total, 3) for k, v in shares.items()}
