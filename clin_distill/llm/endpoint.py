"""One spacy-llm model for every OpenAI-compatible chat endpoint: OpenAI, Azure OpenAI, Gemini's
OpenAI route, vLLM, Ollama's /v1 and the llama.cpp server.

Written here because spacy-llm 0.7.3's OpenAI models always check the key with a GET to
api.openai.com, whatever `endpoint` says: offline that fails, and with a local server the key
would go to OpenAI. This model checks the configured endpoint instead, needs no key on
loopback, refuses non-loopback endpoints unless the user opts in (notes are patient data),
retries 429 and 5xx (spacy-llm retries only 429/503), and returns each answer with its token
usage and latency so accounting survives spacy-llm's cache (see `Answer`).
"""

# No `from __future__ import annotations`: spacy-llm checks __call__'s type hints at runtime.
import ipaddress
import os
import time
from collections.abc import Callable
from typing import Any
from typing import Iterable as TypingIterable  # noqa: UP035 - spacy-llm's type check wants typing's
from urllib.parse import urlsplit

import requests
from requests import ConnectionError as RequestsConnectionError
from requests import ConnectTimeout, ReadTimeout
from spacy_llm.models.rest.openai.model import OpenAI
from spacy_llm.registry import registry

ALLOW_REMOTE_ENV = "CLIN_DISTILL_ALLOW_REMOTE_LLM"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RemoteEndpointRefused(PermissionError):
    """A non-loopback endpoint without the user's explicit opt-in."""


class LLMRequestError(RuntimeError):
    """A request that failed for good (after retries); the message never holds note text."""


class Answer(str):
    """The answer text, carrying what accounting needs. spacy-llm passes model answers to the
    task's parser unchanged, and the parser stores these numbers in `doc.user_data`, which
    spacy-llm's cache persists: a document served from cache keeps its original accounting.
    """

    usage: dict[str, int]
    latency_s: float
    finish_reason: str | None
    tries: int

    def __new__(
        cls, text: str, usage: dict[str, int], latency_s: float, finish_reason: str | None, tries: int
    ) -> "Answer":
        obj = super().__new__(cls, text)
        obj.usage, obj.latency_s, obj.finish_reason, obj.tries = usage, latency_s, finish_reason, tries
        return obj


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a DNS name other than localhost: treated as remote
        return False


def check_endpoint(name: str, endpoint: str, allow_remote: bool) -> None:
    """The PHI guard: raise unless the endpoint is loopback or the user opted in."""
    if is_loopback(endpoint) or allow_remote or os.environ.get(ALLOW_REMOTE_ENV) == "1":
        return
    raise RemoteEndpointRefused(
        f"LLM teacher '{name}': endpoint host '{urlsplit(endpoint).hostname}' is not loopback, so clinical "
        f"notes would leave this machine. Refused by default. Opt in only where an agreement covers it "
        f"(e.g. a BAA): set {ALLOW_REMOTE_ENV}=1 or run with --vars.allow_remote_llm=true."
    )


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
    ):
        check_endpoint(name, endpoint, allow_remote)  # before any request, the key lookup included
        self._api_key_env = api_key_env
        self._auth_header = auth_header
        self._verify_url = verify_url
        self._loopback = is_loopback(endpoint)
        self._last_tries = 0
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
        try:
            r = self.retry(
                requests.get, self._verify_url, headers=self._credentials, timeout=self._max_request_time
            )
        except (TimeoutError, RequestsConnectionError) as err:
            raise LLMRequestError(f"LLM teacher '{self._name}': cannot reach {self._verify_url}") from err
        if r.status_code != 200:
            raise LLMRequestError(
                f"LLM teacher '{self._name}': {self._verify_url} answered HTTP {r.status_code} "
                f"(check the key in {self._api_key_env or 'the configuration'})"
            )
        ids = {m.get("id", "") for m in r.json().get("data", [])}
        if self._name not in ids and f"models/{self._name}" not in ids:  # Gemini lists "models/<name>"
            raise LLMRequestError(
                f"LLM teacher '{self._name}': model not served there; choices: {sorted(ids)}"
            )

    def retry(self, call_method: Callable[..., requests.Response], url: str, **kwargs) -> requests.Response:
        """Exponential backoff on timeouts, refused connections, 429 and 5xx (honouring Retry-After)."""
        interval = self._interval
        for attempt in range(1, self._max_tries + 1):
            self._last_tries = attempt
            try:
                response = call_method(url, **kwargs)
            except (ConnectTimeout, ReadTimeout, RequestsConnectionError) as err:
                if attempt == self._max_tries:
                    raise TimeoutError(f"{urlsplit(url).netloc}: no answer after {attempt} tries") from err
            else:
                if response.status_code not in RETRY_STATUS or attempt == self._max_tries:
                    return response
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    interval = max(interval, min(float(retry_after), 60.0))
            time.sleep(interval)
            interval *= 2
        raise AssertionError("unreachable")

    def __call__(self, prompts: TypingIterable[TypingIterable[str]]) -> TypingIterable[TypingIterable[str]]:
        headers = {**self._credentials, "Content-Type": "application/json"}
        answers: list[list[str]] = []
        for prompts_for_doc in prompts:
            doc_answers: list[str] = []
            for prompt in prompts_for_doc:
                payload = {
                    **self._config,
                    "model": self._name,
                    "messages": [{"role": "user", "content": prompt}],
                }
                start = time.perf_counter()
                r = self.retry(
                    requests.post,
                    self._endpoint,
                    headers=headers,
                    json=payload,
                    timeout=self._max_request_time,
                )
                latency = time.perf_counter() - start
                if r.status_code != 200:
                    raise LLMRequestError(
                        f"{self._name}: HTTP {r.status_code} {r.reason} after {self._last_tries} tries"
                    )
                try:
                    body = r.json()
                    choice = body["choices"][0]
                    text = choice["message"]["content"] or ""
                except (ValueError, KeyError, IndexError, TypeError) as err:
                    raise LLMRequestError(f"{self._name}: response is not a chat completion") from err
                usage = {
                    k: int(body.get("usage", {}).get(k, 0)) for k in ("prompt_tokens", "completion_tokens")
                }
                doc_answers.append(
                    Answer(text, usage, latency, choice.get("finish_reason"), self._last_tries)
                )
            answers.append(doc_answers)
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
) -> OpenAICompatible:
    """`endpoint`: the full chat-completions URL. `verify_url`: the endpoint's model list (default:
    `endpoint` with /chat/completions replaced by /models; "" skips the check, e.g. for Azure
    deployments). `auth_header`: "bearer" or "api-key" (Azure). `context_length`: prompt tokens
    per request, i.e. the model's context minus the answer's `max_tokens`; longer notes are sharded.
    """
    if auth_header not in ("bearer", "api-key"):
        raise ValueError(f"auth_header must be 'bearer' or 'api-key', not {auth_header!r}")
    if verify_url is None:
        verify_url = endpoint.split("?")[0].removesuffix("/chat/completions") + "/models"
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
        verify_url=verify_url,
        allow_remote=allow_remote,
    )
