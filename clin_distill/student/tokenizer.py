"""spaCy's tokenizer with its chunk cache kept filled: the same tokens, tokenized once per chunk.

spaCy's tokenizer caches the tokens of each whitespace-delimited chunk, but once one chunk of a text
hits a special case ("Dr.", "Ms.", "p.m.", "and/or"), no later chunk of that text is cached: its
`has_special` flag is never reset within a text (spaCy issue #13950; the fix, PR #13951, is not in
the pinned spaCy 3.7.5). So across a note most chunks were tokenized afresh every time: on the
benchmark's 300 notes (2 cores, warm caches) spaCy's English tokenizer took 1.04 ms per note, and
0.25 ms through this wrapper. This wrapper first tokenizes each chunk it has not seen on its own (a
one-chunk text starts with the flag clear, so spaCy caches that chunk), then the whole text, whose
chunks now come from the cache. Tokens are spaCy's own either way (tests/test_speed.py compares them
on real notes). Written here because the fix belongs in spaCy's Cython tokenizer, which a packaged
model cannot patch.

The file ships inside the packaged model (`spacy package --code`), so it imports only spaCy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import registry

TOKENIZER = "clin_distill.ChunkCachedTokenizer.v1"
# Chunks remembered as seen; past this the set starts again (spaCy's own cache keeps its entries,
# so a forgotten chunk costs one more lookup in it, not a new tokenization).
SEEN_LIMIT = 200_000


class ChunkCachedTokenizer:
    """Called like spaCy's `Tokenizer`; every other attribute (rules, serialization, explain) is
    the wrapped tokenizer's."""

    def __init__(self, tokenizer: Callable[[str], Doc]) -> None:
        self.tokenizer = tokenizer
        self.seen: set[str] = set()

    def __call__(self, text: str) -> Doc:
        seen, tokenize = self.seen, self.tokenizer
        for chunk in text.split():  # str.split and spaCy's tokenizer share str.isspace
            if chunk not in seen:
                if len(seen) >= SEEN_LIMIT:
                    seen.clear()
                seen.add(chunk)
                tokenize(chunk)
        return tokenize(text)

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)

    def __getattr__(self, name: str):
        if name == "tokenizer":  # not set yet (unpickling): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def __reduce__(self):
        return (type(self), (self.tokenizer,))


@registry.tokenizers(TOKENIZER)
def chunk_cached_tokenizer() -> Callable[[Language], ChunkCachedTokenizer]:
    """`spacy.Tokenizer.v1` (the language's rules, loaded from the pipeline's tokenizer files) in
    the wrapper above."""
    make = registry.tokenizers.get("spacy.Tokenizer.v1")()

    def create(nlp: Language) -> ChunkCachedTokenizer:
        return ChunkCachedTokenizer(make(nlp))

    return create
