"""The encoder's arithmetic and runtime at inference, chosen in the pipeline's config:
`clin_encoder_precision`.

"auto" reads the CPU's flags and runs `with_bf16` on a CPU with native bf16 (AVX512-BF16 or
AMX), `without_bf16` elsewhere; both default to "onnx-int8", the encoder on ONNX Runtime with
dynamic int8 weights (onnx_encoder.py). Measured on 2 cores (reports/benchmark*.md): without
native bf16 it labels 1.94x the words/s of PyTorch float32; on an AMD EPYC with AVX512-BF16 and
VNNI it labels 1.68x the words/s of PyTorch bf16, the two timed in turns (so bf16, the default
there until 2026-12-07, is a setting now); strict F1 on MACCROBAT test within 0.01 of float32 on
both.
AMX CPUs are unmeasured: set `with_bf16 = "bf16"` where bf16 measures faster. The other choices
are "bf16", "onnx-float32" (float32's entities) and "float32". Where onnxruntime is not
installed, "auto" falls back to PyTorch: bf16 on a CPU with native bf16, else float32. Saved with the
pipeline (`spacy package`), the component keeps the int8 graph of its encoder's weights, so that
loading the packaged model does not export and quantise them again.
spacy-transformers runs the encoder in its weights' dtype and hands the outputs to NumPy, which has
no bf16, and thinc's mixed-precision switch is CUDA-only; so for bf16 the weights are cast here
and the encoder's floating outputs cast back to float32.

`numpy_blas` (on by default) moves the matrix products of the layers after the encoder (the NER
head's projection of each token to its hidden width) from thinc's blis, which runs one thread at
37 GFLOPS on this CPU, to NumPy's BLAS held to one thread: 0.43 -> 0.15 ms per note for a note's
330 x 384 x 64 product, the same entities on the benchmark's 300 notes, the student 1.02-1.05x
the words/s in turns. Held to one thread because OpenBLAS's own two threads, waking beside ONNX
Runtime's spinning workers, made the student 0.8x as fast (reports/experiments.md, 2026-12-08).

This file ships inside the packaged model (`spacy package --code`), so it imports only spaCy,
PyTorch and (for `numpy_blas`) threadpoolctl, and registers its factory only once when imported
under two module names (the project's `clin_distill.student.precision` and the model package's
copy).
"""

import json
from pathlib import Path
from typing import Any

import torch
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model, NumpyOps, Ops

FACTORY = "clin_encoder_precision"
GRAPH_FILE, GRAPH_META = "encoder.int8.onnx", "encoder.int8.json"  # the shipped int8 graph
PRECISIONS = ("auto", "float32", "bf16", "onnx-float32", "onnx-int8")


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


class OneThreadBlasOps(NumpyOps):
    """thinc's NumPy ops whose `gemm` is NumPy's BLAS on one thread; every other method (the
    parser's own C loop on blis included) stays thinc's. Written here because thinc's
    `use_blis=False` leaves NumPy's BLAS on all its threads."""

    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController

        super().__init__()
        self.blas = ThreadpoolController().select(user_api="blas")

    def gemm(self, x, y, *, out=None, trans1: bool = False, trans2: bool = False):
        with self.blas.limit(limits=1):
            return Ops.gemm(self, x, y, out=out, trans1=trans1, trans2=trans2)

    def __reduce__(self):  # the controller holds ctypes handles: pickle the ops as a fresh one
        return (type(self), ())


def one_thread_blas(nlp: Language, skip: str) -> int:
    """Give every thinc layer on NumPy ops in the pipeline's components (but `skip`, the
    transformer) `OneThreadBlasOps`; the number of layers changed (0 without threadpoolctl)."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return 0
    ops, changed = None, 0
    for name, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if name == skip or not isinstance(model, Model):
            continue
        for node in model.walk():
            if type(node.ops) is NumpyOps and node.ops.use_blis:
                ops = ops or OneThreadBlasOps()
                node.ops = ops
                changed += 1
    return changed


class EncoderPrecision:
    """First in the pipeline: casts the transformer before the first note reaches it.

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
        with_bf16: str,
        without_bf16: str,
        numpy_blas: bool,
    ) -> None:
        for key, value, allowed in (
            ("precision", precision, PRECISIONS),
            ("with_bf16", with_bf16, PRECISIONS[1:]),
            ("without_bf16", without_bf16, PRECISIONS[1:]),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: {key} must be one of {allowed}, got {value!r}")
        self.nlp, self.name, self.precision, self.pipe_name = nlp, name, precision, pipe
        self.with_bf16, self.without_bf16, self.numpy_blas = with_bf16, without_bf16, numpy_blas
        self.applied: str | None = None
        self.graph: str | None = None  # where the ONNX graph came from: "shipped" or "exported"
        self.blas_layers = 0  # thinc layers moved to OneThreadBlasOps (`numpy_blas`)
        self._shipped: tuple[bytes, dict[str, Any]] | None = None

    def resolve(self) -> str:
        """What "auto" means here: `with_bf16` on a CPU with native bf16, else `without_bf16`; where
        onnxruntime is missing, PyTorch (bf16 on a CPU with native bf16, else float32).

        On a GPU the encoder stays float32: use spacy-transformers' `mixed_precision` there.
        """
        from .onnx_encoder import available

        encoder = self.nlp.get_pipe(self.pipe_name).model.transformer
        on_cpu = next(encoder.parameters()).device.type == "cpu"
        choice = self.precision
        if choice == "auto":
            if not on_cpu:
                return "float32"
            native = cpu_has_bf16()
            choice = self.with_bf16 if native else self.without_bf16
            if choice.startswith("onnx-") and not available():
                choice = "bf16" if native else "float32"
            return choice
        if choice.startswith("onnx-") and not (on_cpu and available()):
            raise RuntimeError(f"{self.name}: {choice} needs onnx and onnxruntime, and a CPU encoder")
        return choice

    def apply(self) -> str:
        if self.applied is None:
            self.applied = self.resolve()
            if self.applied == "bf16":
                bf16_encoder(self.nlp, self.pipe_name)
            elif self.applied.startswith("onnx-"):
                from .onnx_encoder import fingerprint, ort_encoder

                trf = self.nlp.get_pipe(self.pipe_name).model
                graph = None
                if self.applied == "onnx-int8" and self._shipped is not None:
                    data, meta = self._shipped
                    if meta.get("fingerprint") == fingerprint(trf.transformer):
                        graph = (data, meta["outputs"])
                self.graph = "shipped" if graph else "exported"
                # read by the transformer's inference path (windows.py: encoder_runner)
                runner = ort_encoder(trf.transformer, self.applied.removeprefix("onnx-"), graph=graph)
                trf.clin_encoder_runner = runner
            self._shipped = None  # an ONNX Runtime session keeps its own copy
            if self.numpy_blas:
                self.blas_layers = one_thread_blas(self.nlp, self.pipe_name)
        return self.applied

    def to_disk(self, path: Path, exclude: Any = ()) -> None:
        """Save the encoder's int8 graph with its weights' fingerprint: loading then skips the
        export and quantisation (seconds, and about 150 MB at their peak). Saved only from float32
        weights on the CPU, and only where onnx and onnxruntime are installed."""
        from .onnx_encoder import available, encoder_graph, fingerprint

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.pipe_name not in self.nlp.pipe_names:
            return  # a pipeline without its transformer (yet): nothing to export
        encoder = self.nlp.get_pipe(self.pipe_name).model.transformer
        weights = next(encoder.parameters(), None) if encoder is not None else None
        if (
            weights is not None
            and weights.dtype == torch.float32
            and weights.device.type == "cpu"
            and available()
        ):
            data, outputs = encoder_graph(encoder, "int8")
            (path / GRAPH_FILE).write_bytes(data)
            meta = {"fingerprint": fingerprint(encoder), "outputs": outputs}
            (path / GRAPH_META).write_text(json.dumps(meta) + "\n")

    def from_disk(self, path: Path, exclude: Any = ()) -> "EncoderPrecision":
        path = Path(path)
        if (path / GRAPH_FILE).exists() and (path / GRAPH_META).exists():
            self._shipped = ((path / GRAPH_FILE).read_bytes(), json.loads((path / GRAPH_META).read_text()))
        return self

    def __call__(self, doc: Doc) -> Doc:
        self.apply()
        return doc


if not Language.has_factory(FACTORY):
    Language.factory(
        FACTORY,
        default_config={
            "precision": "auto",
            "pipe": "transformer",
            "with_bf16": "onnx-int8",
            "without_bf16": "onnx-int8",
            "numpy_blas": True,
        },
    )(EncoderPrecision)
