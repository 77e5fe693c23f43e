"""Classifier endpoints for the classifier evals: a `role: inference` provider of type `huggingface`.

Text is sent as `{"inputs": text, "parameters": {"return_all_scores": true}}`, images and audio as raw bytes,
to `<base_url>/models/<model>` (the Hugging Face Inference API shape; `additional_config.dedicated: true` posts
to `base_url` itself, for an Inference Endpoint). The reply is `[[{label, score}, …]]` or `[{label, score}, …]`.
As upstream, without an API key no classifier is configured, and the classifier evals are skipped.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from ..egress import async_client
from ..errors import ProviderError
from ..spec import ProviderSpec

DEFAULT_BASE_URL = "https://router.huggingface.co/hf-inference"
KEY_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _scores(body: Any) -> list[tuple[str, float]]:
    rows = body[0] if isinstance(body, list) and body and isinstance(body[0], list) else body
    if not isinstance(rows, list):
        raise ProviderError(f"classifier reply is not a list of labels: {str(body)[:200]}", "bad_response")
    return [(str(r["label"]), float(r["score"])) for r in rows if isinstance(r, dict) and "label" in r]


class HuggingFaceClassifier:
    def __init__(self, provider_id: str, spec: ProviderSpec, api_key: str) -> None:
        self.id = provider_id
        self.base_url = (spec.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.dedicated = spec.additional_config.get("dedicated") is True
        self._key = api_key

    async def classify(self, kind: str, data: Any, model: str) -> list[tuple[str, float]]:
        url = self.base_url if self.dedicated else f"{self.base_url}/models/{model}"
        headers = {"authorization": f"Bearer {self._key}"}
        async with async_client(timeout=60.0) as client:
            try:
                if kind == "text":
                    response = await client.post(url, headers=headers, json={
                        "inputs": data, "parameters": {"return_all_scores": True}})
                else:
                    payload, mime = data
                    response = await client.post(url, headers={**headers, "content-type": mime or
                                                               "application/octet-stream"}, content=payload)
            except httpx.HTTPError as exc:
                raise ProviderError(f"classifier {self.id!r}: {type(exc).__name__}", "connection") from None
        if response.status_code >= 400:
            raise ProviderError(f"classifier {self.id!r}: HTTP {response.status_code}: {response.text[:200]}",
                                "bad_request", response.status_code)
        return _scores(response.json())


def classifier_from(provider_id: str, spec: ProviderSpec) -> HuggingFaceClassifier | None:
    """A classifier for a `role: inference` provider, or None (no key, or not a type spoken here)."""
    if spec.type != "huggingface":
        return None
    env = spec.credential.credential_env or spec.credential.api_key_env
    key = os.environ.get(env) if env else next((os.environ[e] for e in KEY_ENVS if os.environ.get(e)), None)
    return HuggingFaceClassifier(provider_id, spec, key) if key else None
