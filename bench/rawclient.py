"""The in-run baseline client: the least work that still sends every image, stdlib only.

    python bench/rawclient.py DIR URL CONCURRENCY > results.jsonl

Per image it reads the file, base64-encodes it, posts the same message layout as
llamavis on one of CONCURRENCY kept-alive connections, parses the JSON answer and
writes one JSONL line. No decoding, no cache, no retries: a floor, not a competitor.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from urllib.parse import urlsplit


async def worker(paths: list[str], host: str, port: int, prefix: str) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=2**22)
    out = sys.stdout
    while paths:
        path = paths.pop()
        with open(path, "rb") as fh:
            data = base64.b64encode(fh.read()).decode("ascii")
        body = json.dumps({
            "model": "meta-llama/Llama-3.2-11B-Vision-Instruct", "max_tokens": 300,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
                {"type": "text", "text": "Write one short caption for this image."}]}],
        }).encode()  # fmt: skip
        writer.write(f"POST {prefix}/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n"
                     f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
                     .encode() + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        answer = json.loads(await reader.readexactly(length))
        text = answer["choices"][0]["message"]["content"]
        out.write(json.dumps({"image": path, "output": text}) + "\n")
        out.flush()
    writer.close()


async def main(folder: str, url: str, concurrency: int) -> None:
    paths = sorted((os.path.join(folder, n) for n in os.listdir(folder)), reverse=True)
    parts = urlsplit(url)
    jobs = [worker(paths, parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/"))
            for _ in range(min(concurrency, len(paths)))]
    await asyncio.gather(*jobs)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
