"""The encoder's arithmetic at inference, chosen in the pipeline's config: `clin_encoder_precision`.

On CPUs with native bf16 (AVX512-BF16 or AMX) a bf16 encoder labels notes about 2x faster than
float32 with the same entities (reports/benchmark.md); elsewhere PyTorch emulates bf16 and it is
slower, so "auto" reads the CPU's flags. spacy-transformers runs the encoder in its weights' dtype
and hands the outputs to NumPy, which has no bf16, and thinc's mixed-precision switch is CUDA-only;
so the weights are cast here and the encoder's floating outputs cast back to float32.

It also keeps a long labelling run's memory flat: glibc keeps the freed activation buffers of
each note's new tensor sizes in its heap instead of returning them, and the student's resident
memory grew from about 0.86 to 1.27 GB over 4,500 varied notes; `malloc_trim` kept it at 0.87 GB
(reports/benchmark.md measures both). A trim is not free: the pages it returns fault back in on the
next notes, which cost the 3-layer student a quarter of its speed when it trimmed every 10 notes,
so it trims only when resident memory has grown by `malloc_trim_margin_mb` since the last trim.
No maintained library does this for a spaCy pipeline; glibc's own switches
(MALLOC_TRIM_THRESHOLD_ and the like) are read only at process start.

This file ships inside the packaged model (`spacy package --code`), so it imports only spaCy and
PyTorch, and registers its factory only once when imported under two module names (the project's
`clin_distill.student.precision` and the model package's copy).
"""

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Any

import torch
from spacy.language import Language
from spacy.tokens import Doc

FACTORY = "clin_encoder_precision"
PRECISIONS = ("auto", "float32", "bf16")


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def _glibc_malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS, Windows: nothing to trim this way)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _resident_mb() -> float | None:
    """Resident memory now (Linux /proc/self/statm; None elsewhere). Not clin_distill.speed's
    reader: this file ships alone inside the model package."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _outputs_to_float32(module: torch.nn.Module, args: Any, output: Any) -> Any:
    for key, value in list(output.items()):
        if torch.is_tensor(value) and value.is_floating_point():
            output[key] = value.float()
    return output


def bf16_encoder(nlp: Language, pipe: str = "transformer") -> Language:
    """Cast the pipeline's transformer to bf16 in place for inference (not for training)."""
    encoder = nlp.get_pipe(pipe).model.transformer
    if next(encoder.parameters()).dtype != torch.bfloat16:
        encoder.to(torch.bfloat16)
        encoder.register_forward_hook(_outputs_to_float32)
    return nlp


class EncoderPrecision:
    """First in the pipeline: casts the transformer before the first note reaches it, and returns
    freed heap memory to the system: every `malloc_trim_every` notes (0: never) it looks at resident
    memory and trims when that grew `malloc_trim_margin_mb` or more since the last trim (0: always).

    The cast waits for the first document (or `apply()`), because during `spacy.load` this
    component is built before the transformer's weights are read from disk. Docs pass unchanged.
    Inference only: train from the float weights (`training/*/model-best`), not from a cast copy.
    """

    def __init__(
        self,
        nlp: Language,
        name: str,
        precision: str,
        pipe: str,
        onednn_cache: int,
        malloc_trim_every: int,
        malloc_trim_margin_mb: int,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"{name}: precision must be one of {PRECISIONS}, got {precision!r}")
        if malloc_trim_every < 0:
            raise ValueError(f"{name}: malloc_trim_every must be >= 0 (0: off), got {malloc_trim_every}")
        if malloc_trim_margin_mb < 0:
            raise ValueError(f"{name}: malloc_trim_margin_mb must be >= 0, got {malloc_trim_margin_mb}")
        self.nlp, self.name, self.precision, self.pipe_name = nlp, name, precision, pipe
        # oneDNN caches a compiled kernel per input shape (1,024 by default); notes of ever new
        # lengths grow that cache by hundreds of MB. Every layer shares each shape within one note,
        # so a small cache keeps the reuse. Set before the first forward pass; a user's own
        # ONEDNN_PRIMITIVE_CACHE_CAPACITY wins.
        if onednn_cache >= 0:
            os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(onednn_cache))
        self.applied: str | None = None
        self.malloc_trim_every = malloc_trim_every
        self.malloc_trim_margin_mb = malloc_trim_margin_mb
        self._trim = _glibc_malloc_trim() if malloc_trim_every else None
        self._docs = 0
        self._trimmed_at_mb: float | None = None  # resident memory right after the last trim

    def resolve(self) -> str:
        """The precision "auto" means here: bf16 on a CPU with native bf16, else float32.

        On a GPU the encoder stays float32: use spacy-transformers' `mixed_precision` there.
        """
        if self.precision != "auto":
            return self.precision
        encoder = self.nlp.get_pipe(self.pipe_name).model.transformer
        on_cpu = next(encoder.parameters()).device.type == "cpu"
        return "bf16" if on_cpu and cpu_has_bf16() else "float32"

    def apply(self) -> str:
        if self.applied is None:
            self.applied = self.resolve()
            if self.applied == "bf16":
                bf16_encoder(self.nlp, self.pipe_name)
        return self.applied

    def __call__(self, doc: Doc) -> Doc:
        self.apply()
        self._docs += 1
        if self._trim is not None and self._docs % self.malloc_trim_every == 0:
            resident = _resident_mb()
            last = self._trimmed_at_mb
            if resident is None or last is None or resident - last >= self.malloc_trim_margin_mb:
                self._trim(0)  # before this note's forward pass: the heap the last ones freed goes back
                self._trimmed_at_mb = _resident_mb()
        return doc


if not Language.has_factory(FACTORY):
    Language.factory(
        FACTORY,
        default_config={
            "precision": "auto",
            "pipe": "transformer",
            "onednn_cache": 64,
            "malloc_trim_every": 10,
            "malloc_trim_margin_mb": 64,
        },
    )(EncoderPrecision)
