"""Opt-in int8 encoder for CPU inference, at a strict-F1 cost measured by `weasel run benchmark`.

In the committed run (reports/benchmark.md, 2 cores with native bf16) it labelled 1.12x the words/s
of the bf16 default, slower than ONNX Runtime's int8 ("onnx-int8", the packaged model's path on
CPUs without native bf16: clin_distill/student/onnx_encoder.py) and further from the default's
strict F1; it stays as the PyTorch-only int8 and as a runtime of the benchmark's int8 ceiling.

PyTorch's dynamic quantization (per-channel int8 weights, activations quantized on the fly) on
every `nn.Linear` of the spacy-transformers encoder; per-tensor scales were measured to cost up
to 0.045 strict F1, per-channel up to 0.023. spacy-transformers has no quantization option, so
this is done here; torch marks `torch.ao.quantization` for migration to torchao, which is not
in the verified stack.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from spacy.language import Language

from .precision import FACTORY as PRECISION


class QuantizedEncoderError(RuntimeError):
    pass


def _refuse_to_save(*args: Any, **kwargs: Any) -> None:
    # spacy-transformers reloads a state dict that does not fit its float model with
    # strict=False (a warning, then random weights), so an int8 encoder must never be written.
    raise QuantizedEncoderError(
        "this pipeline's encoder was quantized to int8 for inference and cannot be saved: "
        "save the pipeline before calling quantize_encoder"
    )


def quantize_encoder(nlp: Language, pipe: str = "transformer") -> Language:
    """Quantize the pipeline's transformer in place for CPU inference; saving it is refused."""
    if PRECISION in nlp.pipe_names:  # the packaged model: keep its encoder float32
        precision = nlp.get_pipe(PRECISION)
        if precision.applied not in (None, "float32"):
            raise QuantizedEncoderError(f"encoder already in {precision.applied}: quantize before use")
        precision.precision = "float32"
        precision.apply()
    trf = nlp.get_pipe(pipe)
    encoder = trf.model.transformer
    linear = {name for name, module in encoder.named_modules() if isinstance(module, torch.nn.Linear)}
    if not linear:
        raise QuantizedEncoderError(f"pipe {pipe!r} has no float nn.Linear left to quantize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's torchao migration notice
        torch.ao.quantization.quantize_dynamic(
            encoder,
            {name: torch.ao.quantization.per_channel_dynamic_qconfig for name in linear},
            dtype=torch.qint8,
            inplace=True,
        )
    for method in ("to_disk", "to_bytes"):
        setattr(trf, method, _refuse_to_save)
    return nlp
