"""One spacy-llm model for every OpenAI-compatible chat endpoint: OpenAI, Azure OpenAI, Gemini's
OpenAI route, vLLM, Ollama's /v1 and the llama.cpp server.

Written here because spacy-llm 0.7.3's OpenAI models always check the key with a GET to
api.openai.com, whatever `endpoint` says: offline that fails, and with a local server the key
would go to OpenAI. This model checks the configured endpoint instead, needs no key on
loopback, refuses non-loopback endpoints unless the user opts in (notes are patient data),
retries 429 and 5xx (spacy-llm retries only 429/503), and returns each answer with its token
usage and latency so accounting survives spacy-llm's cache (see `Answer`). Every request goes
through one session per endpoint (`transport.py`): no redirect followed, no proxy or credential
taken from the environment, a wall-clock deadline per try, and the PHI guard on every URL.

spacy-llm sends one request at a time (spacy-llm issues #255, #487); this model sends the prompts of
a batch with up to `max_concurrency` requests in flight. A prompt that still fails after its retries
gives an empty `Answer` carrying the error, so the other notes of the batch keep their answers and
only the failed note is retried on the next run (it is never cached).
"""

# No `from __future__ import annotations`: spacy-llm checks __call__'s type hints at runtime.
import os
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any
from typing import Iterable as TypingIterable  # noqa: UP035 - spacy-llm's type check wants typing's
from urllib.parse import urlsplit

import requests
from spacy_llm.models.rest.openai.model import OpenAI
from spacy_llm.registry import registry

from .transport import (
    ALLOW_REMOTE_ENV,
    LLMRequestError,
    RemoteEndpointRefused,
    Reply,
    RequestDeadline,
    check_urls,
    is_loopback,
    make_session,
    models_url,
    request,
)

__all__ = ["ALLOW_REMOTE_ENV", "LLMRequestError", "RemoteEndpointRefused", "is_loopback", "openai_compatible"]
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
USAGE_KEYS = ("prompt_tokens", "completion_tokens")


class Answer(str):
    """The answer text, carrying what accounting needs. spacy-llm passes model answers to the
    task's parser unchanged, and the parser stores these numbers in `doc.user_data`, which
    spacy-llm's cache persists: a document served from cache keeps its original accounting.
    """

    usage: dict[str, int]
    latency_s: float
    finish_reason: str | None
    tries: int
    usage_missing: bool
    over_context: bool
    error: str | None  # why the request failed (status codes and hosts only, never note text)

    def __new__(
        cls,
        text: str,
        usage: dict[str, int],
        latency_s: float,
        finish_reason: str | None,
        tries: int,
        usage_missing: bool = False,
        over_context: bool = False,
        error: str | None = None,
    ) -> "Answer":
        obj = super().__new__(cls, text)
        obj.usage, obj.latency_s, obj.finish_reason, obj.tries = usage, latency_s, finish_reason, tries
        obj.usage_missing, obj.over_context, obj.error = usage_missing, over_context, error
        return obj


def status_phrase(code: int) -> str:
    """The standard phrase, not the server's (which could say anything, even quote the request)."""
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def token_usage(body: dict[str, Any]) -> tuple[dict[str, int], bool]:
    """Prompt and completion tokens, and whether the server left any out: some send
    `usage: null`, omit it or null a field. A missing count is 0, so token totals and costs are
    then lower bounds, and the answer is counted (`usage_missing`) rather than failing the note."""
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    counts, missing = {}, False
    for key in USAGE_KEYS:
        value = usage.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        counts[key] = int(value) if ok else 0
        missing |= not ok
    return counts, missing


class OpenAICompatible(OpenAI):
    def __init__(
        self,
        name: str,
        endpoint: str,
        config: dict[str, Any],
        strict: bool,
        max_tries: int,
        interval: float,
        max_request_time: float,
        context_length: int | None,
        api_key_env: str,
        auth_header: str,
        verify_url: str | None,
        allow_remote: bool,
        proxy: str | None = None,
        max_concurrency: int = 1,
    ):
        if max_concurrency < 1:
            raise ValueError(f"LLM teacher '{name}': max_concurrency must be at least 1")
        # Before any request, the key lookup included; every request goes through this session.
        check_urls(name, endpoint, allow_remote, verify_url, proxy)
        self._session = make_session(proxy)
        self._api_key_env = api_key_env
        self._auth_header = auth_header
        self._verify_url = verify_url
        self._loopback = is_loopback(endpoint)
        self._max_concurrency = max_concurrency
        super().__init__(
            name=name,
            endpoint=endpoint,
            config=config,
            strict=strict,
            max_tries=max_tries,
            interval=interval,
            max_request_time=max_request_time,
            context_length=context_length,
        )

    @property
    def credentials(self) -> dict[str, str]:
        key = os.environ.get(self._api_key_env) if self._api_key_env else None
        if not key:
            if self._loopback:
                return {}
            raise LLMRequestError(
                f"LLM teacher '{self._name}': environment variable {self._api_key_env} is not set"
            )
        if self._auth_header == "api-key":  # Azure OpenAI
            return {"api-key": key}
        return {"Authorization": f"Bearer {key}"}

    def _verify_auth(self) -> None:
        """List the endpoint's own models: checks reachability, the key and the model name."""
        if not self._verify_url:
            return
        r = self.request("GET", self._verify_url, headers=self._credentials)
        if r.status_code != 200:
            raise LLMRequestError(
                f"LLM teacher '{self._name}': {self._verify_url} answered HTTP {r.status_code} "
                f"(check the key in {self._api_key_env or 'the configuration'})"
            )
        try:
            ids = {m.get("id", "") for m in r.json().get("data", [])}
        except (ValueError, AttributeError, TypeError) as err:
            raise LLMRequestError(
                f"LLM teacher '{self._name}': {self._verify_url} is not a model list"
            ) from err
        if self._name not in ids and f"models/{self._name}" not in ids:  # Gemini lists "models/<name>"
            raise LLMRequestError(
                f"LLM teacher '{self._name}': model not served there; choices: {sorted(ids)}"
            )

    def request(self, method: str, url: str, **kwargs: Any) -> Reply:
        return self._send(method, url, **kwargs)[0]

    def _send(self, method: str, url: str, **kwargs: Any) -> tuple[Reply, int]:
        """Through this endpoint's session, each try within `max_request_time`, with exponential
        backoff on timeouts, refused connections, 429 and 5xx (honouring Retry-After); the reply
        and the number of tries."""
        interval = self._interval
        where = urlsplit(url).netloc
        for attempt in range(1, self._max_tries + 1):
            try:
                reply = request(self._session, method, url, self._max_request_time, **kwargs)
            except RequestDeadline as err:
                if attempt == self._max_tries:
                    raise RequestDeadline(f"{err}, {attempt} tries") from err
            except requests.RequestException as err:
                if attempt == self._max_tries:
                    raise LLMRequestError(
                        f"LLM teacher '{self._name}': cannot reach {where} ({type(err).__name__}), "
                        f"{attempt} tries"
                    ) from err
            else:
                if reply.status_code not in RETRY_STATUS or attempt == self._max_tries:
                    return reply, attempt
                retry_after = reply.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    interval = max(interval, min(float(retry_after), 60.0))
            time.sleep(interval)
            interval *= 2
        raise AssertionError("unreachable")

    def ask(self, prompt: str, headers: dict[str, str]) -> Answer:
        """One chat completion; a failure after all tries is an empty Answer with its error."""
        payload = {**self._config, "model": self._name, "messages": [{"role": "user", "content": prompt}]}
        start = time.perf_counter()
        tries = self._max_tries
        try:
            r, tries = self._send("POST", self._endpoint, headers=headers, json=payload)
            if r.status_code != 200:
                raise LLMRequestError(
                    f"{self._name}: HTTP {r.status_code} {status_phrase(r.status_code)} after {tries} tries"
                )
            try:
                body = r.json()
                choice = body["choices"][0]
                text = choice["message"]["content"] or ""
                if not isinstance(text, str):
                    raise TypeError("content is not text")
            except (ValueError, KeyError, IndexError, TypeError) as err:
                raise LLMRequestError(f"{self._name}: response is not a chat completion") from err
        except (LLMRequestError, RequestDeadline) as err:
            zero = dict.fromkeys(USAGE_KEYS, 0)
            return Answer("", zero, time.perf_counter() - start, None, tries, error=str(err)[:300])
        usage, missing = token_usage(body)
        over = self.context_length is not None and usage["prompt_tokens"] > self.context_length
        latency = time.perf_counter() - start
        return Answer(text, usage, latency, choice.get("finish_reason"), tries, missing, over)

    def __call__(self, prompts: TypingIterable[TypingIterable[str]]) -> TypingIterable[TypingIterable[str]]:
        headers = {**self._credentials, "Content-Type": "application/json"}
        per_doc = [list(p) for p in prompts]
        flat = [prompt for doc_prompts in per_doc for prompt in doc_prompts]
        if self._max_concurrency == 1 or len(flat) < 2:
            flat_answers = [self.ask(p, headers) for p in flat]
        else:  # answers come back in prompt order whatever order the server finishes them in
            with ThreadPoolExecutor(min(self._max_concurrency, len(flat))) as pool:
                flat_answers = list(pool.map(lambda p: self.ask(p, headers), flat))
        answers, i = [], 0
        for doc_prompts in per_doc:
            answers.append(flat_answers[i : i + len(doc_prompts)])
            i += len(doc_prompts)
        return answers

    @staticmethod
    def _get_context_lengths() -> dict[str, int]:
        return {}  # set `context_length` in each teacher's config


@registry.llm_models("clin_distill.OpenAICompatible.v1")
def openai_compatible(
    name: str,
    endpoint: str,
    config: dict[str, Any] = {"temperature": 0.0},  # noqa: B006 - read-only, as in spacy-llm
    api_key_env: str = "OPENAI_API_KEY",
    auth_header: str = "bearer",
    verify_url: str | None = None,
    allow_remote: bool = False,
    context_length: int | None = None,
    strict: bool = True,
    max_tries: int = 5,
    interval: float = 1.0,
    max_request_time: float = 120.0,
    proxy: str | None = None,
    max_concurrency: int = 1,
) -> OpenAICompatible:
    """`endpoint`: the full chat-completions URL. `verify_url`: the endpoint's model list (default:
    `endpoint` with /chat/completions replaced by /models; "" skips the check, e.g. for Azure
    deployments). `auth_header`: "bearer" or "api-key" (Azure). `context_length`: prompt tokens
    per request, i.e. the model's context minus the answer's `max_tokens`; longer notes are sharded.
    `max_request_time`: seconds per try, wall clock, the whole answer included. `proxy`: an HTTP(S)
    proxy for this endpoint only, used with the remote opt-in only; proxy variables in the
    environment are never used. `max_concurrency`: requests in flight at once within a batch of
    notes (hosted APIs: within the account's rate limit; a local server gains only if it has as
    many slots, e.g. llama.cpp's `llama-server -np N`).
    """
    if auth_header not in ("bearer", "api-key"):
        raise ValueError(f"auth_header must be 'bearer' or 'api-key', not {auth_header!r}")
    return OpenAICompatible(
        name=name,
        endpoint=endpoint,
        config=dict(config),
        strict=strict,
        max_tries=max_tries,
        interval=interval,
        max_request_time=max_request_time,
        context_length=context_length,
        api_key_env=api_key_env,
        auth_header=auth_header,
        verify_url=models_url(endpoint, verify_url),
        allow_remote=allow_remote,
        proxy=proxy or None,
        max_concurrency=max_concurrency,
    )
