"""Encoder windows bounded in wordpieces as well as in spaCy tokens.

spacy-transformers' `strided_spans` cuts a note into windows of N spaCy tokens. A window of odd
tokens (lab values, codes, long numbers, foreign words) can hold more wordpieces than the encoder
takes (512 for BERT); spacy-transformers then drops the tail's wordpieces
(`truncate_oversize_splits`) and the entities there vanish without a word. This architecture is
spacy-transformers' `TransformerModel.v3` with its span getter wrapped: a window whose wordpieces
would exceed `max_wordpieces` is split in halves until each part fits, so every token reaches the
encoder. Windows that fit are left as they are, so ordinary notes get the encoder input they got
before.

Written here because no maintained span getter sees the tokenizer (span getters get only the
docs). The file ships inside the packaged model (`spacy package --code`), so it imports nothing
from the project.
"""

from __future__ import annotations

from collections.abc import Callable

from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.architectures import create_TransformerModel_v3

ARCHITECTURE = "clin_distill.WordpieceBoundedTransformer.v1"
# Per-token counts are a close estimate of a window's count (BERT's pre-tokenizer splits at the
# same whitespace and punctuation as spaCy); windows within this margin of the limit are counted
# exactly on their own text.
EXACT_MARGIN = 16
_CACHE_LIMIT = 200_000


class WordpieceBoundedSpans:
    """Wrap a span getter: split every window whose wordpieces exceed the limit."""

    def __init__(self, get_spans: Callable[[list[Doc]], list[list[Span]]], model, max_wordpieces: int):
        self.get_spans = get_spans
        self.model = model
        self.max_wordpieces = max_wordpieces
        self._counts: dict[str, int] = {}
        self.splits = 0  # windows split so far (read by tests and the benchmark)

    def _token_count(self, tokenizer, text: str) -> int:
        n = self._counts.get(text)
        if n is None:
            if len(self._counts) > _CACHE_LIMIT:
                self._counts.clear()
            n = self._counts[text] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return n

    def fits(self, tokenizer, span: Span) -> bool:
        estimate = sum(self._token_count(tokenizer, t.text) for t in span) + 2  # [CLS], [SEP]
        if estimate <= self.max_wordpieces - EXACT_MARGIN:
            return True
        return len(tokenizer(span.text)["input_ids"]) <= self.max_wordpieces

    def bounded(self, tokenizer, span: Span) -> list[Span]:
        if len(span) <= 1 or self.fits(tokenizer, span):
            return [span]
        self.splits += 1
        mid = span.start + len(span) // 2
        doc = span.doc
        return self.bounded(tokenizer, doc[span.start : mid]) + self.bounded(tokenizer, doc[mid : span.end])

    def __call__(self, docs: list[Doc]) -> list[list[Span]]:
        nested = self.get_spans(docs)
        tokenizer = self.model.tokenizer
        if tokenizer is None:  # before the backbone is loaded: nothing to count with yet
            return nested
        return [[part for span in spans for part in self.bounded(tokenizer, span)] for spans in nested]


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
    """`spacy-transformers.TransformerModel.v3` whose windows never exceed `max_wordpieces`."""
    if max_wordpieces < 3:
        raise ValueError(f"max_wordpieces must be >= 3, got {max_wordpieces}")
    model = create_TransformerModel_v3(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config
    )
    model.attrs["get_spans"] = WordpieceBoundedSpans(get_spans, model, max_wordpieces)
    return model
