"""The student's encoder on ONNX Runtime: the packaged model's default path on every CPU.

On the benchmark's 2 cores without native bf16 ONNX Runtime's dynamic int8 ran the same encoder over
the same windows 1.9x as fast as PyTorch float32 (the whole student 1.82x), with strict F1 on
MACCROBAT test within 0.009 of float32 (reports/benchmark_no_bf16.md has each runtime's ceiling and
F1); on 2 cores with AVX512-BF16 and VNNI the whole student ran 1.68x as fast as PyTorch bf16, timed
in turns (reports/benchmark.md). int8 is ONNX Runtime's dynamic quantisation (per-channel int8
weights, activations quantised per call). The packaged model ships the int8 graph
(`clin_encoder_precision` saves it beside the weights), used only while the weights' `fingerprint`
matches; any other graph is exported from the loaded weights when the pipeline first runs (seconds
for MiniLM, and a transient 150 MB for the export and quantisation).
Each window runs on its own, without padding (`OrtEncoder._row_by_row`). ONNX Runtime's
transformer optimizer (fused attention, then int8) measured no faster: 11,594 vs 11,455 words/s.
The PyTorch weights stay in the pipeline: saving and training are unchanged.

Written here because spacy-transformers runs only PyTorch modules; the runner plugs into the
inference path of `windows.py` (`encode`). The file ships inside the packaged model (`spacy package
--code`), so it imports only PyTorch, NumPy, transformers and (when used) onnx / onnxruntime.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

RUNTIME_PRECISIONS = ("float32", "int8")


def available() -> bool:
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export(encoder: torch.nn.Module, path: Path) -> list[str]:
    """Export a Hugging Face encoder (float32, eval) with dynamic batch and length; its outputs."""
    encoder = encoder.float().eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((1, 8), dtype=torch.int64) for _ in names)
    outputs = ["last_hidden_state"] + (
        ["pooler_output"] if getattr(encoder, "pooler", None) is not None else []
    )
    axes = {n: {0: "batch", 1: "length"} for n in names + ["last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            encoder, example, str(path), input_names=names, output_names=outputs, dynamic_axes=axes,
            opset_version=17, dynamo=False,
        )  # fmt: skip
    return outputs


class OrtEncoder:
    """Called like the Hugging Face encoder at inference; returns its outputs as torch tensors."""

    def __init__(self, model_bytes: bytes, outputs: list[str], threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_mem_pattern = False  # a pattern per input shape would grow with every new note length
        # ONNX Runtime's workers spin between calls (its default): turning that off was measured
        # slower at batch size 1 (9,245 vs 9,686 words/s float32, 14,939 vs 15,733 int8).
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.outputs = outputs
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, **inputs: torch.Tensor) -> BaseModelOutputWithPooling:
        feed = {k: v.numpy() for k, v in inputs.items() if k in self.inputs}
        if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        mask = feed["attention_mask"] = feed["attention_mask"].astype(np.int64)
        lengths = mask.sum(axis=1)
        right_padded = lengths.min() > 0 and np.array_equal(mask, np.arange(mask.shape[1]) < lengths[:, None])
        if len(lengths) > 1 and right_padded:
            values = self._row_by_row(feed, lengths.tolist())
        else:
            values = self.session.run(self.outputs, feed)
        return BaseModelOutputWithPooling(
            **{k: torch.from_numpy(v) for k, v in zip(self.outputs, values, strict=True)}
        )

    def _row_by_row(self, feed: dict[str, np.ndarray], lengths: list[int]) -> list[np.ndarray]:
        """One call per sequence without its padding, outputs padded back with zeros (the
        alignment never reads padded positions).

        On the benchmark's 300 notes (2 cores, batch size 1, a note's windows padded to its
        longest) this ran int8 13% faster than one padded call (13,739 vs 12,103 words/s): ONNX
        Runtime's calls are cheap, the padding's arithmetic is not. (PyTorch float32 ran slower
        row by row, 6,657 vs 7,286 words/s, so its module keeps the padded batch.)
        """
        rows, width = len(lengths), feed["input_ids"].shape[1]
        values: list[np.ndarray] = []
        for i, n in enumerate(lengths):
            row = self.session.run(self.outputs, {k: v[i : i + 1, :n] for k, v in feed.items()})
            if not values:  # (rows, width, hidden) for hidden states, (rows, hidden) for the pooler
                shapes = [(rows, width, r.shape[2]) if r.ndim == 3 else (rows, r.shape[1]) for r in row]
                values = [np.zeros(shape, r.dtype) for shape, r in zip(shapes, row, strict=True)]
            for out, r in zip(values, row, strict=True):
                if r.ndim == 3:
                    out[i, :n] = r[0]
                else:
                    out[i] = r[0]
        return values


def encoder_graph(encoder: torch.nn.Module, precision: str = "float32") -> tuple[bytes, list[str]]:
    """The encoder exported to ONNX, float32 or dynamic int8: the graph's bytes and its outputs."""
    if precision not in RUNTIME_PRECISIONS:
        raise ValueError(f"ONNX Runtime precision must be one of {RUNTIME_PRECISIONS}, got {precision!r}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        outputs = export(encoder, path)
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = Path(tmp) / "encoder.int8.onnx"
            logging.disable(logging.WARNING)  # its advice on the root logger, at every load
            try:
                quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.disable(logging.NOTSET)
            path = quantized
        return path.read_bytes(), outputs


def fingerprint(encoder: torch.nn.Module) -> str:
    """A hash of the encoder's weights (names, dtypes, shapes, bytes): a graph saved beside them
    is used only by the weights it was exported from."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in encoder.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def ort_encoder(
    encoder: torch.nn.Module,
    precision: str = "float32",
    threads: int | None = None,
    graph: tuple[bytes, list[str]] | None = None,
) -> OrtEncoder:
    """An ONNX Runtime copy of the encoder, float32 or dynamic int8: from `graph` (bytes and
    outputs, as `encoder_graph` gives them) where the caller has it, else exported now."""
    model_bytes, outputs = graph or encoder_graph(encoder, precision)
    return OrtEncoder(model_bytes, outputs, threads or torch.get_num_threads())
