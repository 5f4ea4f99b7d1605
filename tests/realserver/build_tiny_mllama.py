"""Build a tiny, randomly initialised Llama 3.2 Vision (mllama) model into a Hugging Face cache.

Offline and deterministic: a small ``MllamaConfig`` with seeded random weights, a byte-level
BPE tokenizer trained here on a built-in text (Llama 3 special tokens plus ``<|image|>``), a
chat template that behaves like Llama 3.2 Vision Instruct's, and ``MllamaImageProcessor`` for
56 px tiles. The files land in ``<HF_HOME>/hub/models--<org>--<name>/snapshots/<rev>/`` with
``refs/main`` pointing at ``<rev>``, so ``HF_HUB_OFFLINE=1 transformers serve`` finds the model
by its id. Answers are gibberish; the request path, template and image processing are real.

Usage: ``python tests/realserver/build_tiny_mllama.py HF_HOME [--model-id ORG/NAME]``
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

MODEL_ID = "llamavis-test/tiny-mllama"
SEED = 20240925
TILE = 56  # px per tile; patch 14 -> 4x4 patches (+1 class token) per tile
BPE_VOCAB = 496  # 256 byte tokens + merges; the special tokens come after
SNAPSHOT_FILES = ("config.json", "model.safetensors", "tokenizer.json")

# Llama 3's named special tokens, in Llama 3's order (ids follow the BPE vocabulary here).
SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    *(f"<|reserved_special_token_{i}|>" for i in range(2, 7)),
)
IMAGE_TOKEN = "<|image|>"  # id == text vocab_size, as in the real model (128256)

# Behaves like Llama 3.2 Vision Instruct's template for what llamavis sends: BOS, the default
# system header only when there is no image, a system message beside an image rejected, each
# content part rendered in order (the image token where the client put it), and the assistant
# header as generation prompt. Tool-calling branches are left out.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- if messages[0]['content'] is string %}"
    "{%- set system_message = messages[0]['content'] | trim %}"
    "{%- else %}"
    "{%- set system_message = messages[0]['content'][0]['text'] | trim %}"
    "{%- endif %}"
    "{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{%- set image_ns = namespace(has_images=false) %}"
    "{%- for message in messages %}"
    "{%- if message['content'] is not string %}"
    "{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{%- set image_ns.has_images = true %}{%- endif %}"
    "{%- endfor %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if image_ns.has_images and not system_message == '' %}"
    "{{- raise_exception('Prompting with images is incompatible with system messages.') }}"
    "{%- endif %}"
    "{%- if not image_ns.has_images %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}"
    "{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{{- '<|image|>' }}"
    "{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

# Llama 3's pre-tokenizer pattern (contractions, words, 1-3 digit groups, punctuation, spaces).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CORPUS = """\
A photo of a red bicycle leaning against a brick wall on a quiet street in the morning.
Two cats sleep on a blue sofa next to a window; sunlight falls across the cushions.
The receipt lists coffee 3.50, bagel 2.25, orange juice 4.00 and a total of 9.75 dollars.
Describe the image in detail: the colours, the objects, the people and what they are doing.
Answer with one word. Which class fits best: cat, dog, bird, car, truck, person or other?
Return a JSON object with the fields "title", "count", "colour" and "tags" and nothing else.
{"title": "A street sign", "count": 2, "colour": "green", "tags": ["sign", "street"]}
Read all the text in the image and write it out exactly, line by line, keeping the order.
A handwritten note says: Meet me at the station at 7:30, platform 4. Bring the tickets!
A chart with three bars shows sales of 120, 340 and 560 units for 2021, 2022 and 2023.
The dog runs across a green field chasing a yellow ball while children laugh and shout.
Question: how many people are in the picture? Answer: there are three people smiling.
Le chat dort sur le canapé. Der Hund spielt im Garten. El pájaro canta en el árbol.
Caption: a plate of pasta with tomato sauce, basil leaves and grated cheese on a table.
"""


def build(out_dir: Path, model_id: str = MODEL_ID) -> Path:
    """Build the tiny model into the HF_HOME `out_dir`; return its snapshot directory."""
    repo_dir = Path(out_dir) / "hub" / ("models--" + model_id.replace("/", "--"))
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snapshot = repo_dir / "snapshots" / ref.read_text().strip()
        if all((snapshot / name).is_file() for name in SNAPSHOT_FILES):
            return snapshot
    with tempfile.TemporaryDirectory(prefix="tiny-mllama-") as tmp:
        staging = Path(tmp)
        processor = _make_processor()
        processor.save_pretrained(staging)
        _make_model(processor.tokenizer).save_pretrained(staging)
        return _install_snapshot(staging, repo_dir)


def _make_tokenizer():
    """Train a byte-level BPE on CORPUS, add the Llama 3 special tokens, wrap it for transformers."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False, min_frequency=1,
    )
    tok.train_from_iterator(CORPUS.splitlines() * 4, trainer=trainer)
    tok.add_special_tokens([*SPECIAL_TOKENS, IMAGE_TOKEN])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
        special_tokens=[("<|begin_of_text|>", bos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>", model_max_length=8192,
        clean_up_tokenization_spaces=False, model_input_names=["input_ids", "attention_mask"],
    )


def _make_processor():
    """MllamaProcessor = MllamaImageProcessor for 56 px tiles + the tokenizer + the chat template."""
    from transformers import MllamaImageProcessor, MllamaProcessor

    image_processor = MllamaImageProcessor(
        size={"height": TILE, "width": TILE}, max_image_tiles=4,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    return MllamaProcessor(image_processor, _make_tokenizer(), chat_template=CHAT_TEMPLATE)


def _make_model(tokenizer):
    """A seeded, randomly initialised MllamaForConditionalGeneration sized for the tokenizer."""
    import torch
    from transformers import GenerationConfig, MllamaConfig, MllamaForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*SPECIAL_TOKENS, IMAGE_TOKEN)}
    image_id = ids[IMAGE_TOKEN]
    eos = [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]]
    special = {
        "bos_token_id": ids["<|begin_of_text|>"], "pad_token_id": ids["<|finetune_right_pad_id|>"],
    }
    config = MllamaConfig(
        text_config={
            "vocab_size": image_id, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "cross_attention_layers": [1], "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 8192, "eos_token_id": eos,
            **special,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "attention_heads": 2,
            "num_hidden_layers": 2, "num_global_layers": 1, "intermediate_layers_indices": [0, 1],
            "vision_output_dim": 32 * 3, "image_size": TILE, "patch_size": 14, "max_num_tiles": 4,
        },
        image_token_index=image_id,
        architectures=["MllamaForConditionalGeneration"],
    )
    torch.manual_seed(SEED)
    model = MllamaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        do_sample=True, temperature=0.6, top_p=0.9, eos_token_id=eos, max_new_tokens=256,
        **special,
    )
    return model


def _install_snapshot(staging: Path, repo_dir: Path) -> Path:
    """Copy the saved files into snapshots/<rev> (rev = content hash) and point refs/main at it."""
    digest = hashlib.sha1()
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    for path in files:
        digest.update(path.relative_to(staging).as_posix().encode() + b"\0" + path.read_bytes())
    rev = digest.hexdigest()
    snapshot = repo_dir / "snapshots" / rev
    if snapshot.exists():
        shutil.rmtree(snapshot)
    for path in files:
        target = snapshot / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    return snapshot


def main(argv: list[str] | None = None) -> int:
    """Command line: build the model into HF_HOME and print the snapshot path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hf_home", type=Path, help="directory to use as HF_HOME")
    parser.add_argument("--model-id", default=MODEL_ID)
    args = parser.parse_args(argv)
    print(build(args.hf_home, args.model_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
