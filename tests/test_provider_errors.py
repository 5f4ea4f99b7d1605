"""Provider error bodies become the right exception with the provider's own words, on one line."""

from __future__ import annotations

import json

import pytest

from llamavis.backends.errors import error_from_chunk, error_from_response, retry_after_from
from llamavis.errors import (
    AuthError,
    ConfigError,
    ModelUnavailable,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RefusedError,
)

NOW = 1_777_248_000.0


def err(status, body, provider="openrouter", headers=None):
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return error_from_response(status, body, headers or {}, provider, now=NOW)


def check(exc, cls, kind, *fragments):
    assert type(exc) is cls
    assert exc.kind == kind
    text = str(exc)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, text


def test_openrouter_401_missing_key_is_auth_error_with_hint():
    exc = err(401, {"error": {"message": "No cookie auth credentials found", "code": 401}})
    check(
        exc,
        AuthError,
        "auth",
        "openrouter HTTP 401: No cookie auth credentials found",
        "OPENROUTER_API_KEY",
        "llamavis keys set openrouter",
    )
    assert exc.exit_code == 3


def test_openrouter_402_suggests_credits_or_fewer_tokens():
    exc = err(
        402,
        {
            "error": {
                "code": 402,
                "message": "This request requires more credits, or "
                "fewer max_tokens. You requested up to 1024 tokens, but can only "
                "afford 12.",
                "metadata": {"limit_source": "openrouter_credits"},
            }
        },
    )
    check(
        exc,
        ProviderError,
        "provider",
        "openrouter HTTP 402: This request requires more credits",
        "add credits or lower --max-tokens",
    )
    assert not exc.retryable and exc.exit_code == 1


def test_openrouter_403_moderation_is_refused():
    exc = err(
        403,
        {
            "error": {
                "code": 403,
                "message": "meta-llama/llama-3.2-11b requires moderation "
                'on OpenRouter. Your input was flagged for "violence".',
                "metadata": {
                    "reasons": ["violence"],
                    "flagged_input": "a gun...",
                    "provider_name": "OpenRouter",
                    "model_slug": "x",
                },
            }
        },
    )
    check(exc, RefusedError, "refused", "openrouter HTTP 403:", 'flagged for "violence"')
    assert exc.exit_code == 1


def test_openrouter_502_surfaces_upstream_json_in_a_string():
    raw = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}})
    exc = err(
        502,
        {
            "error": {
                "message": "Provider returned error",
                "code": 502,
                "metadata": {"raw": raw, "provider_name": "DeepInfra"},
            }
        },
    )
    check(
        exc,
        ProviderError,
        "provider",
        "openrouter HTTP 502: Provider returned error (DeepInfra: model overloaded)",
    )
    assert exc.retryable and exc.status == 502


@pytest.mark.parametrize("raw", ["upstream said no\n  twice", {"detail": "upstream said no twice"}])
def test_openrouter_raw_as_text_or_object(raw):
    exc = err(
        400,
        {
            "error": {
                "message": "Provider returned error",
                "code": 400,
                "metadata": {"raw": raw, "provider_name": "Novita"},
            }
        },
    )
    check(exc, ProviderError, "provider", "(Novita: upstream said no twice)")
    assert not exc.retryable


def test_openrouter_availability_error_without_code_names_doctor_and_fallback_routes():
    exc = err(
        404,
        {
            "error": {
                "message": "No endpoints found for meta-llama/llama-3.2-11b:free.",
                "error_type": "not_found",
                "http_status": 404,
                "availability": {"code": "free_variant_ended"},
            }
        },
    )
    check(
        exc,
        ModelUnavailable,
        "provider",
        "openrouter HTTP 404: No endpoints found",
        "`llamavis doctor`",
        "--fallback nvidia,cloudflare",
    )


def test_openrouter_429_reset_epoch_ms_in_metadata_headers():
    exc = err(
        429,
        {
            "error": {
                "message": "Rate limit exceeded: free-models-per-min.",
                "code": 429,
                "metadata": {
                    "headers": {
                        "X-RateLimit-Limit": "20",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": "1777248012000",
                    }
                },
            }
        },
    )
    check(exc, RateLimited, "rate_limited", "openrouter HTTP 429: Rate limit exceeded")
    assert exc.retry_after == pytest.approx(12.0) and exc.retryable
    assert "wait 12 s" in str(exc)


def test_daily_limit_says_how_long_to_wait():
    exc = err(
        429,
        {
            "error": {
                "message": "Rate limit exceeded: free-models-per-day.",
                "code": 429,
                "metadata": {"headers": {"X-RateLimit-Reset": "1777258800000"}},
            }
        },
    )
    check(exc, RateLimited, "rate_limited", "free-models-per-day", "wait 3.0 h")


def test_vllm_nested_error():
    exc = err(
        400,
        {
            "error": {
                "message": "Prompting with images is incompatible with system messages.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        },
        provider="local",
    )
    check(
        exc,
        ProviderError,
        "provider",
        "local HTTP 400: Prompting with images is incompatible with system messages.",
    )


def test_vllm_old_flat_error():
    exc = err(
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 4096",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        provider="local",
    )
    check(exc, ProviderError, "provider", "local HTTP 400: This model's maximum context length")


def test_tgi_flat_string_error():
    exc = err(
        422,
        {"error": "Input validation error: grammar is not supported", "error_type": "validation"},
        provider="local",
    )
    check(exc, ProviderError, "provider", "local HTTP 422: Input validation error: grammar is not")


def test_deepinfra_403_not_authenticated_is_auth_error():
    exc = err(403, {"detail": {"error": "Not authenticated"}}, provider="deepinfra")
    check(exc, AuthError, "auth", "deepinfra HTTP 403: Not authenticated", "DEEPINFRA_API_KEY")


def test_deepinfra_openai_style_401():
    exc = err(
        401,
        {
            "error": {
                "message": "Not authenticated",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
        provider="deepinfra",
    )
    check(exc, AuthError, "auth", "deepinfra HTTP 401: Not authenticated")


def test_fastapi_detail_string_and_validation_list():
    exc = err(400, {"detail": "This server is pinned to another model"}, provider="local")
    check(exc, ProviderError, "provider", "local HTTP 400: This server is pinned to another model")
    exc = err(
        422,
        {
            "detail": [
                {
                    "loc": ["body", "foo"],
                    "msg": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                }
            ]
        },
        provider="local",
    )
    check(
        exc, ProviderError, "provider", "local HTTP 422: body.foo: Extra inputs are not permitted"
    )


def test_ollama_model_not_found():
    exc = err(
        404,
        {
            "error": {
                "message": 'model "llama3.2-vision:11b" not found, try pulling it first',
                "type": "not_found_error",
                "param": None,
                "code": None,
            }
        },
        provider="ollama",
    )
    check(
        exc,
        ModelUnavailable,
        "provider",
        'ollama HTTP 404: model "llama3.2-vision:11b" not found',
        "llamavis models",
        "ollama pull llama3.2-vision",
        "Ollama 0.30 and later cannot run it",
    )


def test_llama_cpp_500_server_error_is_retryable():
    exc = err(
        500,
        {
            "error": {
                "code": 500,
                "message": "image input is not supported - hint: "
                "if this is unexpected, you may need to provide the mmproj",
                "type": "server_error",
            }
        },
        provider="local",
    )
    check(exc, ProviderError, "provider", "local HTTP 500: image input is not supported")
    assert exc.retryable


def test_plain_text_500_points_at_the_server_log():
    exc = err(500, b"Internal Server Error", provider="local")
    check(
        exc,
        ProviderError,
        "provider",
        "local HTTP 500: Internal Server Error",
        "the server's log has the cause",
    )


def test_html_error_page_reduced_to_its_title():
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    exc = err(502, page)
    check(exc, ProviderError, "provider", "openrouter HTTP 502: 502 Bad Gateway")
    assert "nginx" not in str(exc)


def test_empty_body_uses_the_status_phrase():
    check(err(503, b""), ProviderError, "provider", "openrouter HTTP 503: Service Unavailable")


def test_bare_404_hints_at_the_base_url():
    exc = err(404, "404 page not found", provider="local")
    check(exc, ProviderError, "provider", "local HTTP 404: 404 page not found", "/v1")


def test_novita_model_access_denied_is_a_provider_error_not_auth():
    exc = err(
        403,
        {
            "code": 403,
            "reason": "MODEL_ACCESS_DENIED",
            "message": "Your API key has no access to this model: verify your identity",
            "metadata": {},
        },
        provider="novita",
    )
    check(exc, ProviderError, "provider", "novita HTTP 403: Your API key has no access")
    assert exc.exit_code == 1


@pytest.mark.parametrize("status", [408, 504])
def test_timeouts_are_provider_timeouts(status):
    exc = err(status, {"error": {"message": "Request timed out", "code": status}})
    check(exc, ProviderTimeout, "timeout", f"HTTP {status}: Request timed out")
    assert exc.retryable


def test_long_multiline_message_is_collapsed_and_cut():
    exc = err(400, {"error": {"message": "line one\n\n   line two " + "x" * 1000}})
    text = str(exc)
    assert "line one line two" in text and len(text) < 360 and text.endswith("…")


def test_in_band_error_with_string_code_is_retryable():
    exc = error_from_chunk(
        {"error": {"code": "server_error", "message": "Provider disconnected"}}, "openrouter"
    )
    check(
        exc,
        ProviderError,
        "provider",
        "openrouter error during the answer: Provider disconnected",
        "server_error",
    )
    assert exc.retryable


def test_in_band_429_is_rate_limited():
    exc = error_from_chunk({"error": {"code": 429, "message": "slow down"}}, "openrouter")
    assert isinstance(exc, RateLimited) and exc.retryable


def test_retry_after_forms():
    assert retry_after_from({"Retry-After": "7"}, now=NOW) == 7.0
    assert retry_after_from({"retry-after-ms": "1500", "Retry-After": "9"}, now=NOW) == 1.5
    assert retry_after_from(
        {"Retry-After": "Mon, 27 Apr 2026 00:00:30 GMT"}, now=1_777_248_000.0
    ) == pytest.approx(30.0)
    assert retry_after_from({"x-ratelimit-reset": "1777248005000"}, now=NOW) == pytest.approx(5.0)
    assert retry_after_from({"Retry-After": "soon"}, now=NOW) is None
    assert retry_after_from({}, now=NOW) is None


@pytest.mark.parametrize("chunk", [
    {"error": {"code": "400", "message": "image could not be decoded"}},  # a status as a string
    {"error": "Input validation error: too many images", "error_type": "validation"},  # TGI
    {"error": {"message": "bad", "type": "invalid_request_error", "code": None}},  # OpenAI style
])
def test_in_band_client_errors_are_not_retried(chunk):
    assert not error_from_chunk(chunk, "local").retryable


# -- routes that do not serve the model, and accounts that must act first ----------------


def test_openrouter_no_endpoints_for_the_model_is_a_dead_route_with_next_steps():
    exc = err(404, {"error": {"message": "No endpoints found for "
                              "meta-llama/llama-3.2-11b-vision-instruct.", "code": 404}})
    check(exc, ModelUnavailable, "provider",
          "No endpoints found for meta-llama/llama-3.2-11b-vision-instruct.", "llamavis doctor")
    assert "openrouter" not in exc.hint  # the fallback routes named are other routes


def test_no_endpoint_for_the_parameters_sent_is_not_a_dead_route():
    # require_parameters eliminated every endpoint: the model lives, response_format is refused.
    exc = err(404, {"error": {"message": "No endpoints found that can handle the requested "
                              "parameters.", "code": 404}})
    assert type(exc) is ProviderError


def test_cloudflare_licence_error_5016_is_a_config_error_naming_agree():
    exc = err(403, {"result": None, "success": False, "messages": [], "errors": [
        {"code": 5016, "message": "Prior to using this model, you must submit the prompt 'agree'"}]},
        provider="cloudflare")
    assert type(exc) is ConfigError and exc.exit_code == 3
    assert "you must submit the prompt 'agree'" in str(exc)
    assert "llamavis agree cloudflare" in str(exc)


def test_cloudflare_no_such_model_keeps_its_words_and_is_a_dead_route():
    exc = err(400, {"result": None, "success": False, "errors": [
        {"code": 5007, "message": "No such model @cf/meta/llama-3.2-90b-vision-instruct or task"}]},
        provider="cloudflare")
    check(exc, ModelUnavailable, "provider", "cloudflare HTTP 400: No such model", "doctor")


def test_ollama_030_unknown_architecture_says_to_use_an_older_ollama():
    exc = err(500, {"error": {"message": "unknown model architecture: 'mllama'"}},
              provider="ollama")
    check(exc, ModelUnavailable, "provider", "unknown model architecture", "older Ollama")
    assert not exc.retryable
