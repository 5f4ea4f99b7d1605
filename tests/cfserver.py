"""Cloudflare Workers AI's native API on 127.0.0.1, as its docs describe it.

    with CloudflareServer(token="t") as cf:
        env = {"LLAMAVIS_CLOUDFLARE_BASE_URL": cf.url, "CLOUDFLARE_API_TOKEN": "t"}

Speaks ``POST /client/v4/accounts/{account}/ai/run/{model}`` (cloudflare-docs
``workers-ai-models/llama-3.2-11b-vision-instruct.json``): input ``image`` (a list of
byte values) with ``prompt`` or ``messages`` (string contents), ``max_tokens``,
``stream``; answers ``{"result": {"response", "usage"}, "success", "errors",
"messages"}``, or ``data: {"response": ...}`` events ending in ``data: [DONE]``. Until
an account has sent ``{"prompt": "agree"}`` the model answers 403 with error 5016
(workers-ai-errors.mdx). ``GET .../ai/models/search`` lists the served models.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from fakeserver import POLL_S, LoopbackHTTPServer

ACCOUNT = "0123456789abcdef0123456789abcdef"
MODEL = "@cf/meta/llama-3.2-11b-vision-instruct"
AGREE_5016 = ("Prior to using this model, you must submit the prompt 'agree' to accept the "
              "Llama 3.2 Community License and Acceptable Use Policy.")


def image_answer(image: bytes, text: str) -> str:
    """The default answer: names the image it was given, so each answer is its own."""
    return f"Image {hashlib.sha256(image).hexdigest()[:12]} seen."


class CloudflareServer:
    def __init__(self, token: str, *, agreed: bool = False,
                 answer: Callable[[bytes, str], str] = image_answer,
                 models: tuple[str, ...] = (MODEL, "@cf/meta/llama-4-scout-17b-16e-instruct")):
        self.token, self.agreed, self.answer, self.models = token, agreed, answer, models
        self.requests: list[dict[str, Any]] = []  # bodies of every run request
        self.agreements = 0
        self._lock = threading.Lock()
        self.httpd = LoopbackHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(POLL_S,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/client/v4/accounts/{ACCOUNT}/ai"

    def __enter__(self) -> CloudflareServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def run(self, model: str, body: dict[str, Any]) -> tuple[int, Any]:
        """What one run request gets: (status, JSON body) or (200, list of SSE lines)."""
        with self._lock:
            self.requests.append(body)
            if model not in self.models:
                return 400, envelope(5007, f"No such model {model} or task")
            if body.get("prompt") == "agree":
                self.agreed = True
                self.agreements += 1
                return 200, {"result": {"response": "Thank you for agreeing to the license."},
                             "success": True, "errors": [], "messages": []}
            if not self.agreed:
                return 403, envelope(5016, AGREE_5016)
        image = body.get("image")
        if not (isinstance(image, list) and image and all(isinstance(b, int) and 0 <= b <= 255
                                                          for b in image)):
            return 400, envelope(5006, "Type mismatch of '/image', 'array' not in 'string'")
        text = body.get("prompt") or "\n".join(m["content"] for m in body.get("messages") or [])
        if not isinstance(text, str) or not text:
            return 400, envelope(5006, "required properties at '/' are 'prompt'")
        answer = self.answer(bytes(image), text)
        usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
        if body.get("stream"):
            words = re.findall(r"\S+\s*", answer)
            return 200, [f"data: {json.dumps({'response': w})}" for w in words] + [
                f"data: {json.dumps({'response': '', 'usage': usage})}", "data: [DONE]"]
        return 200, {"result": {"response": answer, "usage": usage}, "success": True,
                     "errors": [], "messages": []}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        prefix = f"/client/v4/accounts/{ACCOUNT}/ai"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {server.token}":
                    return True
                self._json(401, envelope(10000, "Authentication error"))
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.split("?")[0] != f"{prefix}/models/search":
                    self._json(404, envelope(7003, "Could not route to /, perhaps your object "
                                                   "identifier is invalid?"))
                    return
                items = [{"id": str(i), "name": name, "task": {"name": "Text Generation"}}
                         for i, name in enumerate(server.models)]
                self._json(200, {"result": items, "success": True, "errors": [], "messages": []})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if not self._authorised():
                    return
                if not self.path.startswith(f"{prefix}/run/"):
                    self._json(404, envelope(7003, "No route for that URI"))
                    return
                status, answer = server.run(self.path[len(prefix) + 5:], body)
                if isinstance(answer, list):
                    self._stream(answer)
                else:
                    self._json(status, answer)

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, lines: list[str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for line in lines:
                    self.wfile.write((line + "\n\n").encode())
                self.close_connection = True

        return Handler


def envelope(code: int, message: str) -> dict[str, Any]:
    """Cloudflare's API error envelope."""
    return {"result": None, "success": False, "errors": [{"code": code, "message": message}],
            "messages": []}
