"""A second in-run baseline: the raw client's work, sent through one httpx.AsyncClient.

    python bench/httpxclient.py DIR URL CONCURRENCY [httpx2] > results.jsonl

It separates what the HTTP library costs from what llamavis adds on top of it: the
same payloads as bench/rawclient.py, CONCURRENCY in flight (a semaphore), one client
with llamavis's pool limits. With ``httpx2`` it uses that fork instead (llm's HTTP
library), when the interpreter running it has it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys

if sys.argv[4:] == ["httpx2"]:
    import httpx2 as httpx
else:
    import httpx


async def main(folder: str, url: str, concurrency: int) -> None:
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(path: str) -> None:
            async with slots:
                with open(path, "rb") as fh:
                    data = base64.b64encode(fh.read()).decode("ascii")
                body = {
                    "model": "meta-llama/Llama-3.2-11B-Vision-Instruct", "max_tokens": 300,
                    "messages": [{"role": "user", "content": [
                        {"type": "image_url",
                         "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
                        {"type": "text", "text": "Write one short caption for this image."}]}],
                }  # fmt: skip
                response = await client.post(f"{url}/chat/completions", json=body)
                text = response.json()["choices"][0]["message"]["content"]
                sys.stdout.write(json.dumps({"image": path, "output": text}) + "\n")
                sys.stdout.flush()

        await asyncio.gather(*(one(path) for path in paths))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
