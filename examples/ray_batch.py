#!/usr/bin/env python3
"""Run a llamavis task over a folder of images with Ray Data, one llamavis.Client per worker.

    pip install 'llamavis[ray]'
    python examples/ray_batch.py photos/ captions/ --task caption -P nvidia -m 90b \\
        --workers 4 --concurrency 8

Ray Data reads the images as bytes (so workers need no shared filesystem: SRC_DIR may be a
local folder or an object-store URL such as s3://bucket/photos), hands them in batches to
a pool of actors each holding one ``llamavis.Client`` (made once per actor, so its HTTP pool
and result cache are reused for every batch), and writes JSON lines into OUT_DIR in the
same pipeline, one row per image:

    {"path": ..., "output": ..., "error": null, "provider": ..., "model": ..., "usage": {...}}

``output`` is native JSON, as in llamavis' envelope (a string, a list or an object);
``error`` is null or ``{"kind", "message"}``. The provider sees up to
workers x concurrency requests at once: size both against its rate limit.

Without RAY_ADDRESS (or --address) a local Ray starts, so the same script runs on a
laptop and on a cluster. API keys reach the workers through the environment
(``runtime_env``), never a keys file: see docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# Environment variables the workers need: provider keys and llamavis' own settings.
KEY_SUFFIXES = ("_API_KEY", "_TOKEN")


class Analyze:
    """Ray Data's callable class: one llamavis.Client per actor, reused for every batch."""

    def __init__(self, task: str, task_args: dict[str, Any], options: dict[str, Any]) -> None:
        import llamavis

        self.client = llamavis.Client(**options)
        self.task, self.task_args = task, task_args

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        paths = [str(p) for p in batch["path"]]
        images = zip(paths, (bytes(b) for b in batch["bytes"]), strict=True)  # (id, image) pairs
        done = {r.image: r for r in
                self.client.analyze_many(images, task=self.task, **self.task_args)}
        rows = [{"path": path, "output": done[path].output, "error": done[path].error,
                 "provider": done[path].provider, "model": done[path].model,
                 "usage": done[path].usage.to_dict()} for path in paths]
        return pa.Table.from_pylist(rows)  # lists and objects stay native in the JSON


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src_dir", metavar="SRC_DIR", help="folder or object-store URL of images")
    p.add_argument("out_dir", metavar="OUT_DIR", help="where the JSON lines files go")
    p.add_argument("--task", default="caption", help="caption, ocr, classify, ... (default caption)")
    p.add_argument("-P", "--provider", help="as llamavis -P (default: the first with a key)")
    p.add_argument("-m", "--model", help="as llamavis -m (default 11b)")
    p.add_argument("--base-url", help="an OpenAI-compatible endpoint")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight per worker (8)")
    p.add_argument("--workers", type=int, help="actors (default: the CPUs Ray sees)")
    p.add_argument("--batch-size", type=int, help="images per batch (default 8 x concurrency)")
    p.add_argument("-c", "--classes", action="append", help="classes, comma-separated")
    p.add_argument("--schema", help="a JSON Schema file, inline JSON or 'name, total float'")
    p.add_argument("-q", "--question", help="the question, for --task vqa")
    p.add_argument("-p", "--prompt", help="the prompt, for --task prompt")
    p.add_argument("--no-cache", action="store_true", help="ask again for images already done")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or None,
                   help="a Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    return p.parse_args(argv)


def forwarded_env() -> dict[str, str]:
    """The keys and llamavis settings of this process, for the workers' runtime_env."""
    return {k: v for k, v in os.environ.items()
            if k.startswith("LLAMAVIS_") or k.endswith(KEY_SUFFIXES)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task_args = {k: v for k, v in {"classes": args.classes, "schema": args.schema,
                                   "question": args.question, "prompt": args.prompt}.items()
                 if v is not None}
    options = {"provider": args.provider, "model": args.model, "base_url": args.base_url,
               "concurrency": args.concurrency, "cache": not args.no_cache}
    import llamavis

    try:  # a missing key or a bad option: say so here, not once per image on the workers
        with llamavis.Client(**options) as client:
            client.check(args.task, **task_args)
    except llamavis.LlamavisError as exc:
        sys.stderr.write(f"ray_batch: error: {exc}\n")
        return int(exc.exit_code)
    import ray

    ray.init(address=args.address, runtime_env={"env_vars": forwarded_env()})
    workers = args.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    from llamavis.images.prepare import ACCEPTED_EXTENSIONS

    images = ray.data.read_binary_files(
        args.src_dir, include_paths=True,
        file_extensions=sorted(e.lstrip(".") for e in ACCEPTED_EXTENSIONS))
    results = images.map_batches(
        Analyze, fn_constructor_args=(args.task, task_args, options), concurrency=workers,
        batch_size=args.batch_size or 8 * args.concurrency,
        num_cpus=0.5,  # an actor mostly waits on the network: leave CPUs for reading
    )
    results.write_json(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
