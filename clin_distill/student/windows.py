"""The student's transformer: encoder windows bounded in wordpieces, and a fast inference path.

Windows. spacy-transformers' `strided_spans` cuts a note into windows of N spaCy tokens. A window
of odd tokens (lab values, codes, long numbers, foreign words) can hold more wordpieces than the
encoder takes (512 for BERT); spacy-transformers then drops the tail's wordpieces
(`truncate_oversize_splits`) and the entities there vanish without a word. This architecture is
spacy-transformers' `TransformerModel.v3` with its span getter wrapped: a window whose wordpieces
would exceed `max_wordpieces` is split in halves until each part fits, so every token reaches the
encoder. Windows that fit are left as they are, so ordinary notes get the encoder input they got
before. Written here because no maintained span getter sees the tokenizer (span getters get only
the docs).

Inference. At batch size 1 (the packaged default) the transformer component spent about a third
of its time outside the encoder's forward pass (reports/benchmark.md before this path): the
tokenizer's Python wrapper (`convert_ids_to_tokens` one id at a time), the token-to-wordpiece
alignment (`get_token_positions` builds a dict of every Token, twice per batch) and thinc's
PyTorch shim (`eval()`/`train()` over every submodule per call). `encode` computes the same
`FullTransformerBatch` (wordpieces, alignment, per-doc split, encoder outputs; tests/test_speed.py
compares them on real notes) with the Rust tokenizer called directly, one window at a time (its
batch call's thread pool competed with the encoder's threads for the 2 cores), each space-separated
chunk's wordpieces cached where the tokenizer is BERT's (`ChunkCachedWordpieces`), the alignment in
NumPy, the wordpiece bound checked on the windows' own encodings (the per-token estimate above
runs only where a window is over), and the encoder under `torch.inference_mode`, or the runner
`clin_encoder_precision` set (ONNX Runtime). Training, slow tokenizers, windows longer than the
encoder takes and an encoder on a GPU use the stock forward. Written here because
spacy-transformers has no inference fast path, and its successor (spacy-curated-transformers)
would change the trained architecture.

The file ships inside the packaged model (`spacy package --code`, which imports each file on its
own), so it imports nothing from the project.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import torch
from spacy.attrs import IDX, LENGTH, ORTH
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.architectures import create_TransformerModel_v3
from spacy_transformers.data_classes import FullTransformerBatch, TransformerData, WordpieceBatch
from thinc.api import Model
from thinc.types import Ragged

ARCHITECTURE = "clin_distill.WordpieceBoundedTransformer.v1"
# Per-token counts are a close estimate of a window's count (BERT's pre-tokenizer splits at the
# same whitespace and punctuation as spaCy); windows within this margin of the limit are counted
# exactly on their own text.
EXACT_MARGIN = 16
_CACHE_LIMIT = 200_000
_CHUNK_LIMIT = 20_000  # about 16 MB of cached wordpieces (815 bytes a chunk on the unlabelled notes)
_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CHUNK_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> chunk cache or None


class WordpieceBoundedSpans:
    """Wrap a span getter: split every window whose wordpieces exceed the limit."""

    def __init__(self, get_spans: Callable[[list[Doc]], list[list[Span]]], model, max_wordpieces: int):
        self.get_spans = get_spans
        self.model = model
        self.max_wordpieces = max_wordpieces
        self._counts: dict[int, int] = {}  # ORTH hash -> wordpieces of that token alone
        self.splits = 0  # windows split so far (read by tests and the benchmark)

    def _cumulative_counts(self, tokenizer, doc: Doc) -> np.ndarray:
        """Wordpieces before each token (and after the last) when each token is tokenized alone,
        cached by the token's text (its ORTH hash)."""
        orths = doc.to_array(ORTH).tolist()
        counts = [self._counts.get(orth) for orth in orths]
        for i, n in enumerate(counts):
            if n is None:
                if len(self._counts) > _CACHE_LIMIT:
                    self._counts.clear()
                n = len(tokenizer(doc[i].text, add_special_tokens=False)["input_ids"])
                counts[i] = self._counts[orths[i]] = n
        return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    def fits(self, tokenizer, span: Span, cumulative: np.ndarray) -> bool:
        estimate = int(cumulative[span.end] - cumulative[span.start]) + 2  # [CLS], [SEP]
        if estimate <= self.max_wordpieces - EXACT_MARGIN:
            return True
        return len(tokenizer(span.text)["input_ids"]) <= self.max_wordpieces

    def bounded(self, tokenizer, span: Span, cumulative: np.ndarray) -> list[Span]:
        if len(span) <= 1 or self.fits(tokenizer, span, cumulative):
            return [span]
        self.splits += 1
        mid = span.start + len(span) // 2
        doc = span.doc
        return self.bounded(tokenizer, doc[span.start : mid], cumulative) + self.bounded(
            tokenizer, doc[mid : span.end], cumulative
        )

    def __call__(self, docs: list[Doc]) -> list[list[Span]]:
        nested = self.get_spans(docs)
        tokenizer = self.model.tokenizer
        if tokenizer is None:  # before the backbone is loaded: nothing to count with yet
            return nested
        out = []
        for doc, spans in zip(docs, nested, strict=True):
            cumulative = self._cumulative_counts(tokenizer, doc)
            out.append([part for span in spans for part in self.bounded(tokenizer, span, cumulative)])
        return out


RUNNER_ATTR = "clin_encoder_runner"  # set by clin_encoder_precision (ONNX Runtime)


def encoder_runner(model: Model) -> Callable[..., Any] | None:
    """What runs the encoder at inference where it is not the model's own PyTorch module: an
    attribute of the model itself, so two imports of this file (project, package) agree on it."""
    return getattr(model, RUNNER_ATTR, None)


def _backend(tokenizer) -> Any | None:
    """A private copy of the fast tokenizer's Rust backend with no truncation or padding (the HF
    wrapper sets both on its own backend per call), or None for a slow tokenizer."""
    backend = _BACKENDS.get(tokenizer)
    if backend is None:
        rust = getattr(tokenizer, "_tokenizer", None)
        if rust is None:
            return None
        backend = type(rust).from_str(rust.to_str())
        backend.no_truncation()
        backend.no_padding()
        _BACKENDS[tokenizer] = backend
    return backend


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated `range(start, start + length)` for each pair, and which pair each came from."""
    owner = np.repeat(np.arange(len(starts)), lengths)
    first = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum())) - first[owner] + starts[owner], owner


def align(nested_spans: list[list], docs: list[Doc], offsets: np.ndarray, n_wordpieces: np.ndarray) -> Ragged:
    """spacy-transformers' `get_alignment_via_offset_mapping`, vectorised over each doc's windows:
    for every token of every doc, the sorted flat indices (row * padded width + column) of the
    wordpieces with a character in the token or in the one character after it (which the next token
    claims if it starts there). A window's text is its doc's text from its first token's start to its
    last token's end, so one character-to-token map per doc serves all its windows: the characters
    where a window's own map and the doc's differ lie after the window's text, where no wordpiece is."""
    n_rows, width = offsets.shape[:2]
    stride = n_rows * width + 1
    doc_offsets = np.cumsum([0] + [len(d) for d in docs])
    columns = np.arange(width)
    keys, row = [], 0
    for d, (doc, doc_spans) in enumerate(zip(docs, nested_spans, strict=True)):
        k = len(doc_spans)
        if k == 0:
            continue
        idx, length = doc.to_array([IDX, LENGTH]).astype(np.int64).reshape(-1, 2).T
        tok_end = np.minimum(idx + length + 1, np.append(idx[1:], idx[-1] + length[-1] + 1))
        chars, tok_of_char = _ranges(idx, tok_end - idx)
        char_to_tok = np.full(int(tok_end[-1]), -1, dtype=np.int64)
        char_to_tok[chars] = tok_of_char
        starts = np.array([span.start_char for span in doc_spans], dtype=np.int64)
        window = offsets[row : row + k]
        used = columns < n_wordpieces[row : row + k, None]
        wp_len = np.where(used, np.maximum(window[:, :, 1] - window[:, :, 0], 0), 0).ravel()
        pos, owner = _ranges((window[:, :, 0] + starts[:, None]).ravel(), wp_len)
        inside = (pos >= 0) & (pos < len(char_to_tok))
        tok = char_to_tok[pos[inside]]
        hit = tok >= 0
        keys.append((doc_offsets[d] + tok[hit]) * stride + row * width + owner[inside][hit])
        row += k
    flat = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
    positions, data = np.divmod(flat, stride)
    lengths = np.bincount(positions, minlength=int(doc_offsets[-1]))
    return Ragged(data.astype("i"), lengths.astype("i"))


class ChunkEncoding(NamedTuple):
    """What `encode` reads of a `tokenizers.Encoding`."""

    ids: list[int]
    type_ids: list[int]
    offsets: np.ndarray  # (wordpieces, 2) character offsets into the window's text
    tokens: list[str]


class ChunkCachedWordpieces:
    """A window's wordpieces joined from those of its space-separated chunks, each chunk tokenized
    once (up to `_CHUNK_LIMIT` chunks, then afresh): notes repeat their words, and the Rust
    tokenizer normalises, splits and looks up every character again on every call. On the
    benchmark's 300 notes (2 cores, batch size 1) the transformer's wordpieces took 0.40 ms per note
    instead of 0.76, the whole student about 14 ms.

    Exact only where no wordpiece can cross a space: BERT's WordPiece tokenizers, whose normaliser
    works character by character and whose pre-tokenizer splits at every space (BioBERT, MiniLM).
    `for_backend` returns None for any other tokenizer (byte-level BPE, SentencePiece keep the
    space inside their pieces), which then encodes each window whole. Written here because the
    `tokenizers` library caches nothing across calls."""

    PIPELINE = ("BertNormalizer", "BertPreTokenizer", "WordPiece", "TemplateProcessing")

    def __init__(self, backend) -> None:
        self.backend = backend
        self.chunks: dict[str, tuple[list[int], np.ndarray, list[str]]] = {}
        full, bare = (
            backend.encode("x", add_special_tokens=True),
            backend.encode("x", add_special_tokens=False),
        )
        k = full.special_tokens_mask.index(0)
        n = len(bare.ids)
        layout = [1] * k + [0] * n + [1] * (len(full.ids) - k - n)
        if full.ids[k : k + n] != bare.ids or full.special_tokens_mask != layout:
            raise ValueError("the tokenizer's template is not [specials] sequence [specials]")
        self.head = (full.ids[:k], full.type_ids[:k], full.tokens[:k])
        self.tail = (full.ids[k + n :], full.type_ids[k + n :], full.tokens[k + n :])
        self.sequence_type = full.type_ids[k]

    @classmethod
    def for_backend(cls, backend) -> ChunkCachedWordpieces | None:
        """The cache, or None where a wordpiece could cross a space: another pipeline, an added
        token with a space in it or one that takes the spaces beside it (lstrip, rstrip), or a
        template other than [specials] sequence [specials]."""
        parts = (backend.normalizer, backend.pre_tokenizer, backend.model, backend.post_processor)
        if tuple(type(p).__name__ for p in parts) != cls.PIPELINE:
            return None
        added = backend.get_added_tokens_decoder().values()
        if any(" " in t.content or t.lstrip or t.rstrip for t in added):
            return None
        try:
            return cls(backend)
        except ValueError:
            return None

    def _chunk(self, chunk: str) -> tuple[list[int], np.ndarray, list[str]]:
        if len(self.chunks) > _CHUNK_LIMIT:
            self.chunks.clear()
        enc = self.backend.encode(chunk, add_special_tokens=False)
        hit = self.chunks[chunk] = (enc.ids, np.array(enc.offsets, dtype=np.int64).reshape(-1, 2), enc.tokens)
        return hit

    def encode(self, text: str) -> ChunkEncoding:
        ids, tokens = list(self.head[0]), list(self.head[2])
        offsets, starts, counts = [], [], []
        pos = 0
        for chunk in text.split(" "):
            hit = self.chunks.get(chunk) or self._chunk(chunk)
            if hit[0]:
                ids += hit[0]
                tokens += hit[2]
                offsets.append(hit[1])
                starts.append(pos)
                counts.append(len(hit[0]))
            pos += len(chunk) + 1
        k, n = len(self.head[0]), len(ids) - len(self.head[0])
        ids += self.tail[0]
        tokens += self.tail[2]
        window_offsets = np.zeros((len(ids), 2), dtype=np.int64)  # special tokens: (0, 0)
        if offsets:
            window_offsets[k : k + n] = np.concatenate(offsets) + np.repeat(starts, counts)[:, None]
        type_ids = self.head[1] + [self.sequence_type] * n + self.tail[1]
        return ChunkEncoding(ids, type_ids, window_offsets, tokens)


def _window_encoder(tokenizer, backend) -> Callable[[str], Any]:
    """The chunk cache's `encode` where the tokenizer allows it, else the Rust tokenizer's."""
    if tokenizer not in _CHUNK_CACHES:
        _CHUNK_CACHES[tokenizer] = ChunkCachedWordpieces.for_backend(backend)
    cached = _CHUNK_CACHES[tokenizer]
    return cached.encode if cached is not None else partial(backend.encode, add_special_tokens=True)


def _encodings(encode: Callable[[str], Any], nested_spans: list[list[Span]]) -> list | None:
    """The encoding of every window, one at a time (None: no window at all). A window's text is
    sliced from its doc's text, which is what `Span.text` joins token by token."""
    encodings = []
    for doc_spans in nested_spans:
        if doc_spans:
            text = doc_spans[0].doc.text
            for span in doc_spans:
                encodings.append(encode(text[span.start_char : span.end_char]))
    return encodings or None


def encode(model: Model, docs: list[Doc]) -> FullTransformerBatch | None:
    """The inference batch of the stock forward, or None where this path does not apply (a slow
    tokenizer; an encoder on a GPU, where spacy-transformers' own device handling is kept)."""
    tokenizer = model.tokenizer
    backend = _backend(tokenizer) if tokenizer is not None else None
    runner = encoder_runner(model)
    if backend is None or (runner is None and next(model.transformer.parameters()).device.type != "cpu"):
        return None
    getter = model.attrs["get_spans"]
    bounded = isinstance(getter, WordpieceBoundedSpans)
    # The wordpiece bound splits only a window whose exact count is over its limit, and the
    # encodings below count exactly: windows are bounded only when one of them is over.
    nested_spans = getter.get_spans(docs) if bounded else getter(docs)
    window_encoder = _window_encoder(tokenizer, backend)
    encodings = _encodings(window_encoder, nested_spans)
    if encodings is None:
        return None
    if bounded and max(len(enc.ids) for enc in encodings) > getter.max_wordpieces:
        nested_spans = getter(docs)
        encodings = _encodings(window_encoder, nested_spans)
    n_wp = np.array([len(enc.ids) for enc in encodings], dtype=np.int64)
    width = int(n_wp.max())
    if width > tokenizer.model_max_length:
        return None  # the stock forward truncates oversize windows
    n = len(encodings)
    pad_id, pad_token = tokenizer.pad_token_id, tokenizer.pad_token
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    type_ids = np.zeros((n, width), dtype=np.int64)
    offsets = np.zeros((n, width, 2), dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.float32)
    strings = []
    for i, enc in enumerate(encodings):
        k = n_wp[i]
        input_ids[i, :k] = enc.ids
        type_ids[i, :k] = enc.type_ids
        offsets[i, :k] = enc.offsets
        mask[i, :k] = 1.0
        strings.append(enc.tokens + [pad_token] * int(width - k))
    with_types = "token_type_ids" in tokenizer.model_input_names
    wordpieces = WordpieceBatch(
        strings=strings,
        input_ids=input_ids,
        attention_mask=mask,
        lengths=[int(k) for k in n_wp],
        token_type_ids=type_ids if with_types else None,
    )
    alignment = align(nested_spans, docs, offsets, n_wp)
    inputs = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if with_types:
        inputs["token_type_ids"] = torch.from_numpy(type_ids)
    if runner is not None:
        outputs = runner(**inputs)
    else:
        encoder = model.transformer
        if encoder.training:
            encoder.eval()
        with torch.inference_mode():
            outputs = encoder(**inputs)
    batch = FullTransformerBatch(
        spans=nested_spans, wordpieces=wordpieces, model_output=outputs, align=alignment
    )
    batch.cached_doc_data = split_by_doc(batch, docs)
    return batch


def split_by_doc(batch: FullTransformerBatch, docs: list[Doc]) -> list[TransformerData]:
    """`FullTransformerBatch.split_by_doc` with token positions from the docs' lengths, not a dict
    of every Token."""
    arrays = {}
    for key, value in batch.model_output.items():
        if torch.is_tensor(value):
            arrays[key] = value.numpy() if value.dtype != torch.bfloat16 else value.float().numpy()
    doc_offsets = np.cumsum([0] + [len(d) for d in docs])
    outputs, start, prev_tokens = [], 0, 0
    for d, doc_spans in enumerate(batch.spans):
        if len(doc_spans) == 0 or len(doc_spans[0]) == 0:
            outputs.append(TransformerData.empty())
            continue
        start_i = int(doc_offsets[d]) + doc_spans[0].start
        end_i = int(doc_offsets[d]) + doc_spans[-1].end
        end = start + len(doc_spans)
        doc_tokens = batch.wordpieces[start:end]
        doc_align = batch.align[start_i:end_i]
        doc_align.data = doc_align.data - prev_tokens
        model_output = type(batch.model_output)()
        for key, array in arrays.items():
            model_output[key] = array[start:end]
        outputs.append(TransformerData(wordpieces=doc_tokens, model_output=model_output, align=doc_align))
        prev_tokens += doc_tokens.input_ids.size
        start = end
    return outputs


def with_fast_inference(model: Model) -> Model:
    """Give a spacy-transformers TransformerModel this inference path (training unchanged)."""
    stock = model._func

    def forward(model: Model, docs: list[Doc], is_train: bool):
        if not is_train:
            batch = encode(model, docs)
            if batch is not None:
                return batch, lambda d_output: docs
        return stock(model, docs, is_train)

    model._func = forward
    return model


@registry.architectures(ARCHITECTURE)
def wordpiece_bounded_transformer(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},  # noqa: B006  (the signature of TransformerModel.v3)
    transformer_config: dict = {},  # noqa: B006
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},  # noqa: B006
    max_wordpieces: int = 510,
):
    """`spacy-transformers.TransformerModel.v3` whose windows never exceed `max_wordpieces`, with
    the inference path above (`with_fast_inference`: same outputs, less Python per note)."""
    if max_wordpieces < 3:
        raise ValueError(f"max_wordpieces must be >= 3, got {max_wordpieces}")
    model = create_TransformerModel_v3(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config
    )
    model.attrs["get_spans"] = WordpieceBoundedSpans(get_spans, model, max_wordpieces)
    return with_fast_inference(model)
