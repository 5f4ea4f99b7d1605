"""Llama 3.2 Vision inside the llamavis process (``-P transformers``), with Hugging Face transformers.

::

    backends/local_engine.LocalClient   the client face: OpenAI-shape payload in, Completion out
      └── batcher.MicroBatcher          one worker thread: gathers concurrent requests into batches
            ├── loader.get_engine       the model + processor, loaded once per process, lazily
            └── generate.run_batch      one processor call and one ``generate`` per batch
                  └── grammar           constrained decoding (llguidance) for classes and JSON

Nothing here imports torch, transformers or llguidance at module level: ``llamavis --help``
and every command that does not use this provider stay as fast as before.
"""
