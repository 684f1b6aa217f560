"""Opt-in bf16 encoder for CPUs with native bf16 arithmetic (AVX512-BF16 or AMX): 2.0-2.2x the
float student's words/s on 2 cores (three runs) with the same entities (reports/benchmark.md).

spacy-transformers runs the encoder in the weights' dtype and hands its outputs to NumPy, which
has no bf16, and thinc's own mixed-precision switch is CUDA-only; so the encoder's weights are
cast here and its floating outputs cast back to float32 on the way out. On CPUs without native
bf16, PyTorch emulates it and the student gets slower: `cpu_has_bf16` tells which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from spacy.language import Language


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
