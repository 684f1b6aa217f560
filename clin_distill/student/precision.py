"""The encoder's arithmetic at inference, chosen in the pipeline's config: `clin_encoder_precision`.

On CPUs with native bf16 (AVX512-BF16 or AMX) a bf16 encoder labels notes faster than float32 with
the same entities (reports/benchmark.md: the float32 encoder ran at 0.53x the bf16 default's
words/s); elsewhere PyTorch emulates bf16 and it is slower, so "auto" reads the CPU's flags.
spacy-transformers runs the encoder in its weights' dtype and hands the outputs to NumPy, which has
no bf16, and thinc's mixed-precision switch is CUDA-only; so the weights are cast here and the
encoder's floating outputs cast back to float32.

This file ships inside the packaged model (`spacy package --code`), so it imports only spaCy and
PyTorch, and registers its factory only once when imported under two module names (the project's
`clin_distill.student.precision` and the model package's copy).
"""

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
    """First in the pipeline: casts the transformer before the first note reaches it.

    The cast waits for the first document (or `apply()`), because during `spacy.load` this
    component is built before the transformer's weights are read from disk. Docs pass unchanged.
    Inference only: train from the float weights (`training/*/model-best`), not from a cast copy.
    """

    def __init__(self, nlp: Language, name: str, precision: str, pipe: str) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"{name}: precision must be one of {PRECISIONS}, got {precision!r}")
        self.nlp, self.name, self.precision, self.pipe_name = nlp, name, precision, pipe
        self.applied: str | None = None

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
        return doc


if not Language.has_factory(FACTORY):
    Language.factory(FACTORY, default_config={"precision": "auto", "pipe": "transformer"})(EncoderPrecision)
