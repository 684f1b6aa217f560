"""The student's encoder on a GPU, beside the CPU numbers of `weasel run benchmark`
(`weasel run benchmark-gpu` -> reports/benchmark_gpu.{json,md}).

Two halves, so that the GPU half needs nothing but PyTorch and transformers (a rented GPU box
often has a different Python, NumPy and CuPy than this project pins):

- `export_bundle` (where the project runs): the packaged student's own fine-tuned encoder (config +
  weights) and exactly the padded wordpiece batches the student feeds it for the benchmark's
  notes at each batch size (`clin_distill.bench.speed.encoder_batches`: same windows, same grouping).
- `run_bundle` (on the GPU; from the repository root with `PYTHONPATH=.` where the project is not
  installed): forward passes only, fp32 / bf16 / fp16, best of 3 per batch size, as words/s
  with the CPU's word counts; plus a BERT-base bf16 reference at batch 128 x 128 wordpieces, the
  shape of the issue's H100 reference (about 1.4M tokens/s).

spaCy and the project's pipeline code are imported only inside `export_bundle`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from ..reports import write_report


class NoGpuError(ValueError):
    """The device asked for is not a CUDA device this machine has."""


DTYPES = (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16))


def export_bundle(
    model: Path, unlabelled_dir: Path, bundle: Path, notes: int, batch_sizes: list[int], half_weights: bool
) -> dict[str, Any]:
    """Write config.json, encoder.safetensors, batches.pt and meta.json into `bundle`; returns meta."""
    import spacy
    from safetensors.torch import save_file

    from ..student import memory, precision, tokenizer, windows  # noqa: F401  (the packaged pipeline's code)
    from .speed import benchmark_notes, encoder_batches

    nlp = spacy.load(model)
    texts = [d.text for d in benchmark_notes(unlabelled_dir, notes)]
    encoder = nlp.get_pipe("transformer").model.transformer
    bundle.mkdir(parents=True, exist_ok=True)
    encoder.config.to_json_file(bundle / "config.json")
    dtype = torch.float16 if half_weights else torch.float32
    state = {k: v.detach().to(dtype).contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, bundle / "encoder.safetensors")
    batches, words = {}, 0
    for b in batch_sizes:
        padded, words = encoder_batches(nlp, texts, b)  # the same words at every batch size
        # attention_mask is input_ids != pad (0) for BERT: only the ids travel, as int32
        batches[str(b)] = [t["input_ids"].to(torch.int32) for t in padded]
    meta = {"model": str(model), "notes": len(texts), "weights_dtype": str(dtype), "words": words}
    torch.save(batches, bundle / "batches.pt")
    (bundle / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def time_forward(model: torch.nn.Module, batches: list[torch.Tensor], device: str, repeats: int = 3) -> float:
    """Best of `repeats` passes over the batches (ids; mask = ids != 0), after 3 warm-up batches."""
    tensors = [(ids.to(device).long(), (ids != 0).to(device).long()) for ids in batches]
    with torch.inference_mode():
        for ids, mask in tensors[:3]:  # warm-up: kernels chosen, memory pooled
            model(input_ids=ids, attention_mask=mask)
        best = float("inf")
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            for ids, mask in tensors:
                model(input_ids=ids, attention_mask=mask)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return best


def _machine(device: str, on_gpu: bool) -> dict[str, Any]:
    import transformers

    props = torch.cuda.get_device_properties(device) if on_gpu else None
    return {
        "gpu": torch.cuda.get_device_name(device) if on_gpu else f"{device} (no GPU)",
        "gpu_memory_gib": round(props.total_memory / 2**30, 1) if props else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _cpu_line(data: dict[str, Any], cpu_report: Path) -> list[str]:
    """The CPU benchmark's student and ceiling beside the best GPU ceiling (nothing without it)."""
    if not cpu_report.exists():
        return []
    cpu = json.loads(cpu_report.read_text())
    data["cpu"] = {
        "student_words_per_second": cpu["student"]["words_per_second"],
        "ceiling_words_per_second": cpu["ceiling"]["words_per_second"],
        "cpu_count": cpu["machine"]["cpu_count"],
    }
    best = max(data["ceiling"].values(), key=lambda r: r["words_per_second"])
    speedup = best["words_per_second"] / cpu["student"]["words_per_second"]
    data["gpu_ceiling_over_cpu_student"] = round(speedup, 1)
    return [
        f"- CPU ({cpu['machine']['cpu_count']} cores, `reports/benchmark.json`): student "
        f"{cpu['student']['words_per_second']:,.0f} words/s, "
        f"ceiling {cpu['ceiling']['words_per_second']:,.0f} words/s. "
        f"Best GPU encoder ceiling: {best['words_per_second']:,.0f} words/s "
        f"(batch {best['batch_size']}), {data['gpu_ceiling_over_cpu_student']}x the CPU student."
    ]


def run_bundle(bundle: Path, report: Path, cpu_report: Path, device: str) -> None:
    """Time the bundle's encoder at each dtype and batch size; write the report."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    on_gpu = device.startswith("cuda")
    if on_gpu and (not torch.cuda.is_available() or device.endswith(":-1")):
        raise NoGpuError(f"no CUDA device {device!r} here (in Weasel: --vars.gpu_id=0)")
    meta = json.loads((bundle / "meta.json").read_text())
    batches = torch.load(bundle / "batches.pt")
    config = BertConfig.from_json_file(bundle / "config.json")
    weights = load_file(bundle / "encoder.safetensors")
    data: dict[str, Any] = {
        "machine": _machine(device, on_gpu),
        "sample": {"notes": meta["notes"], "words": meta["words"]},
        "weights": f"the packaged student's encoder, carried as {meta['weights_dtype']}",
        "ceiling": {},
    }
    rows = []
    for dtype_name, dtype in DTYPES:
        model = BertModel(config, add_pooling_layer=False)
        model.load_state_dict({k: v for k, v in weights.items() if not k.startswith("pooler.")}, strict=False)
        model = model.to(device=device, dtype=dtype).eval()
        runs = []
        for b, ids_list in batches.items():
            seconds = time_forward(model, ids_list, device)
            tokens = sum(int((ids != 0).sum()) for ids in ids_list)
            runs.append({
                "batch_size": int(b),
                "transformer_batches": len(ids_list),
                "seconds": round(seconds, 4),
                "tokens_per_second": round(tokens / seconds, 1),
                "words_per_second": round(meta["words"] / seconds, 1),
            })  # fmt: skip
            rows.append([f"student encoder, {dtype_name}", b, len(ids_list), f"{tokens / seconds:,.0f}",
                         f"{meta['words'] / seconds:,.0f}"])  # fmt: skip
        best = max(runs, key=lambda r: r["words_per_second"])
        data["ceiling"][dtype_name] = {"by_batch_size": runs, **best}
        del model
        torch.cuda.empty_cache()

    # Reference shape from the issue: BERT-base, bf16, batch 128 x 128 wordpieces, no padding.
    base = BertModel(BertConfig(), add_pooling_layer=False).to(device=device, dtype=torch.bfloat16).eval()
    ids = torch.randint(1000, 30000, (128, 128), dtype=torch.int32)
    seconds = time_forward(base, [ids] * 20, device)
    data["reference_bert_base_bf16"] = {
        "batch": 128,
        "seq_len": 128,
        "tokens_per_second": round(20 * ids.numel() / seconds, 1),
    }
    rows.append(["BERT-base reference, bf16", 128, 20, f"{20 * ids.numel() / seconds:,.0f}", ""])
    after = _cpu_line(data, cpu_report)
    after.append(
        f"- BERT-base bf16 reference: {data['reference_bert_base_bf16']['tokens_per_second']:,.0f} tokens/s "
        "(the issue's H100 reference: about 1.4M)."
    )
    write_report(
        report,
        data,
        f"Student encoder on {data['machine']['gpu']}",
        f"Written by `python scripts/benchmark_gpu.py run` "
        f"(torch {torch.__version__}, CUDA {torch.version.cuda}): "
        f"forward passes of the packaged student's encoder over the exact wordpiece batches it builds for "
        f"{meta['notes']} real notes ({meta['words']:,} words), best of 3.",
        ["what", "notes per pipe batch", "transformer batches", "wordpieces/s", "words/s"],
        rows,
        after,
    )
