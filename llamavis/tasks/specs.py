"""Tasks as data: everything llamavis knows about a task, in one ``TaskSpec`` per task.

As ``ProviderSpec`` is for providers, so this table is for tasks: the commands, their help
and options (cli/commands.py), the up-front usage checks and the answer checker
(settings.py), the image encoding (tasks.py), sidecar files (outputs.py) and terminal
rendering (cli/term.py) all read it. Adding a task is one ``register(TaskSpec(...))``
and, unless it reuses one, a template in prompts/.

Imports nothing heavy: ``llamavis --help`` reads this table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from llamavis.errors import UsageError

if TYPE_CHECKING:
    from llamavis.tasks.answers import OutputSpec

Param = Literal["question", "classes", "prompt", "schema"]
OutputKind = Literal["text", "class", "classes", "object"]
_WORDS = {2: "two", 3: "three", 4: "four"}
Checker = Callable[[Sequence[str], "dict[str, Any] | None"], "OutputSpec"]


def text_answer(classes: Sequence[str], schema: dict[str, Any] | None) -> OutputSpec:
    """Free text: any non-empty answer that is not a refusal."""
    from llamavis.tasks.answers import TextSpec

    return TextSpec()


def one_class(classes: Sequence[str], schema: dict[str, Any] | None) -> OutputSpec:
    """Exactly one of the classes, as the user spelled it."""
    from llamavis.tasks.answers import ClassSpec

    return ClassSpec(classes)


def some_classes(classes: Sequence[str], schema: dict[str, Any] | None) -> OutputSpec:
    """Zero or more of the classes, in the user's order."""
    from llamavis.tasks.answers import MultiClassSpec

    return MultiClassSpec(classes)


def schema_object(classes: Sequence[str], schema: dict[str, Any] | None) -> OutputSpec:
    """One JSON object that validates against the schema."""
    from llamavis.tasks.answers import SchemaSpec

    return SchemaSpec(schema or {})


@dataclass(frozen=True)
class TaskSpec:
    """One task: what it is called and says, what it takes, and what its answer must be."""

    name: str  # the command and the JSON envelope's "task"
    help: str  # one line for `llamavis --help` and the command's help
    examples: tuple[str, ...]  # shell lines shown under the command's help
    params: tuple[Param, ...] = ()  # the task options it takes (-q, -c, -p, --field/--schema)
    output: OutputKind = "text"  # what Result.output is: str, one class, a list, an object
    checker: Checker = text_answer  # builds the structured.* spec that checks each answer
    image_purpose: Literal["photo", "text"] = "photo"  # "text" keeps small print legible
    json_sidecar: bool = False  # --output-dir writes .json (else .txt)
    render: Literal["markdown", "plain"] = "plain"  # how a terminal shows a text answer
    min_classes: int = 0  # classes it needs at least (classify: 2)
    template: str = ""  # the prompt template it uses by default ("" = its name)

    @property
    def default_template(self) -> str:
        return self.template or self.name

    @property
    def streams(self) -> bool:
        """A text answer is shown as it arrives; a class or an object only once checked."""
        return self.output == "text"

    def check_inputs(self, classes: Sequence[str], schema: Any) -> None:
        """Usage errors a command would hit only after its first image: caught up front."""
        if "classes" in self.params and not classes:
            raise UsageError(f"{self.name} needs classes: -c/--classes A,B,C")
        if len(classes) < self.min_classes:
            least = _WORDS.get(self.min_classes, str(self.min_classes))
            raise UsageError(f"{self.name} needs at least {least} classes in -c/--classes")
        if "schema" in self.params and not schema:
            raise UsageError(f"{self.name} needs --field KEY=DESCRIPTION or --schema FILE_OR_JSON")

    def make_checker(self, classes: Sequence[str], schema: dict[str, Any] | None) -> OutputSpec:
        """The checker (llamavis.tasks.answers) for this task's answers."""
        return self.checker(classes, schema)


TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add (or replace) a task in the table; every consumer sees it from then on."""
    TASKS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a task (for tests that register a throwaway one)."""
    TASKS.pop(name, None)


def names() -> tuple[str, ...]:
    """The task names, in the table's order (the order of the commands in --help)."""
    return tuple(TASKS)


def get(name: str) -> TaskSpec:
    """The spec of a task, or a UsageError listing the tasks there are."""
    try:
        return TASKS[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None


def find(name: str) -> TaskSpec | None:
    """The spec of a task, or None (for code that also sees names from elsewhere)."""
    return TASKS.get(name)


for _spec in (
    TaskSpec(
        "caption", "Write a short caption for each image.",
        ("llamavis caption examples/shapes.jpg",
         "find photos -name '*.jpg' | llamavis caption -j 8 --jsonl > captions.jsonl"),
        render="markdown",
    ),
    TaskSpec(
        "detailed-caption", "Describe each image in detail.",
        ("llamavis detailed-caption examples/shapes.jpg",
         "llamavis detailed-caption -r photos/ --output-dir captions/"),
        render="markdown",
    ),
    TaskSpec(
        "ocr", "Transcribe the text in each image.",
        ("llamavis ocr examples/receipt.png", "llamavis ocr scans/ --jsonl > text.jsonl"),
        image_purpose="text",
    ),
    TaskSpec(
        "vqa", "Answer a question about each image.",
        ("llamavis vqa examples/shapes.jpg -q 'What colour is the ball?'",),
        params=("question",), render="markdown",
    ),
    TaskSpec(
        "classify", "Put each image in exactly one of your classes.",
        ("llamavis classify examples/shapes.jpg -c indoor,outdoor",
         "llamavis classify shots/ -c ok,broken --json"),
        params=("classes",), output="class", checker=one_class, json_sidecar=True, min_classes=2,
    ),
    TaskSpec(
        "multi-classify", "Tag each image with every class that applies (possibly none).",
        ("llamavis multi-classify examples/shapes.jpg -c ball,sky,grass,car",),
        params=("classes",), output="classes", checker=some_classes, json_sidecar=True,
    ),
    TaskSpec(
        "structured", "Extract fields from each image as JSON that validates against a schema.",
        ("llamavis structured examples/receipt.png --field shop='shop name' "
         "--field 'total number=amount paid'",
         "llamavis structured receipts/ --schema receipt.schema.json --jsonl"),
        params=("schema",), output="object", checker=schema_object, json_sidecar=True,
    ),
    TaskSpec(
        "prompt", "Send your own prompt with each image and print the raw answer.",
        ("llamavis prompt examples/sign.png -p 'What does this sign mean for a driver?'",),
        params=("prompt",), render="markdown",
    ),
):
    register(_spec)
