"""Tasks: what a run predicts. The axis beside the strategy (how it transfers).

A task is one package, ``tasks/<name>/``: its ``__init__`` holds the Task class, registered
by ``@register_task("name")`` (which also gives it a strategy registry that loads the
package's ``strategies`` module on first use); its ``options.py``, ``model.py`` (the model
kind), ``strategies`` and, where the task answers differently from a classifier, its own
``evaluate.py`` (``evaluate``, ``predict``), ``serve.py`` (``answer``, ``picture``) and
``report.py`` (``report_parts``) and ``data.py`` (``claims``, ``discover``): the Task finds
those by name, so the package needs no
forwarding methods. Nothing outside a task's package names it.

A task supplies what differs between, say, classifying images and classifying clips (and,
later, segmenting pixels or detecting boxes); the run lifecycle (engine/lifecycle.py), the
API and the CLI stay the same. The contract, one file + ``@TASKS.register`` per task:

  name, description       shown by `tlcv train --help` and in errors
  strategies              a Registry of trainers for this task: (TrainConfig, progress) -> Run
  options                 a dataclass of the options only this task takes (TrainConfig is the
                          shared options plus every task's; --help groups them by task)
  claims(data)            True when ``data`` is this task's kind (auto-detection when --task
                          is not given; classification, the default, is asked last)
  chosen_by(cfg)          True when an option only this task takes picks it (--temporal)
  prepare(cfg)            the task's defaults that depend on others, before training
  discover(data, strict)  labelled examples found on disk -> data.Source (items per split)
  collect(paths)          unlabelled inputs for predict (files and folders as given)
  score(run, items, ...)  class probabilities of the readable inputs (inference.Scored)
  evaluate(run, data)     `tlcv evaluate`: metrics + files (default: per-item classes)
  predict(run, paths)     `tlcv predict`: one answer per input (default: top-k classes)
  run_tags                the ``task`` values a run folder's model.json may hold for it
  budget_option, score_metric, history_metric, scored_splits
                          what `tlcv experiment` varies (--shots sets this TrainConfig option)
                          and compares (metrics.json key of the first split present; the
                          history.csv column per epoch)
  score_columns, per_class_columns, head_info, evaluation_files
                          what the CLI shows of a trained or evaluated run (metrics.json keys
                          with their labels), so no command branches on the task
  prediction_rows(results)  `tlcv predict --format csv`: a header row, then one row per answer
  serve_answer(server, image, top_k), serve_picture(server, image, target), page_labels
                          the served page: POST /predict's JSON, POST /explain's PNG, and the
                          words the page shows above them (serve_refusal: why not served)
  export_refusal(run)     None when `tlcv export` can build the run's graph, else why not
  torch_free              predict / serve --engine onnxruntime run the graph without torch
                          (runtime.py: graph_spec, predict, answer; default: a classifier's)
  report_parts(path, metrics)  the report's tables and pictures of one run folder
  explain(run, paths, out)  `tlcv explain`; explain_refusal: why a task has no maps
  adapt.py, adapt_options  `tlcv adapt`: the package's adapt(cfg, progress) and its flags
                          (adaptation/pipeline.py adapts a classifier itself)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..registry import Registry, import_module_later, import_submodules

if TYPE_CHECKING:
    from ..data import ImageItem, Source
    from ..inference import Scored
    from ..runs import Run


class Task:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    run_tags: ClassVar[tuple[str, ...]] = ()
    strategies: ClassVar[Registry]
    options: ClassVar[type | None] = None
    # the options `tlcv adapt` takes for this task (None: only the shared ones); its own
    # adapt.py (``adapt(cfg, progress)``) trains the adapted run (adaptation/pipeline.py asks)
    adapt_options: ClassVar[type | None] = None
    budget_option: ClassVar[str] = "per_class"
    budget_label: ClassVar[str] = "labelled training images per class"
    score_metric: ClassVar[str] = "accuracy"
    score_label: ClassVar[str] = "accuracy"
    history_metric: ClassVar[str] = "val_acc"
    scored_splits: ClassVar[tuple[str, ...]] = ("test",)
    # (column label, metrics.json key): the scores `tlcv train` and `tlcv evaluate` print
    score_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("accuracy", "accuracy"),
        ("balanced acc.", "balanced_accuracy"),
        ("macro-F1", "macro_f1"),
    )
    # (column label, key of a per_class entry): `tlcv evaluate`'s table; the first is a count
    per_class_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("images", "n"),
        ("recall", "recall"),
        ("precision", "precision"),
        ("F1", "f1"),
    )
    head_info: ClassVar[str] = "classifier"  # model.json entry named next to the backbone
    # (label, key of evaluate's result): the files `tlcv evaluate` points the user to
    evaluation_files: ClassVar[tuple[tuple[str, str], ...]] = (
        ("confusion matrix", "confusion_png"),
    )

    # the served page's words: the answer's title (count: followed by the number of answers)
    # and what the picture is
    page_labels: ClassVar[dict] = {"answer": "Prediction", "count": False,
                                   "picture": "Grad-CAM overlay"}  # fmt: skip
    serve_refusal: ClassVar[str | None] = None  # why `tlcv serve` cannot serve it (None: can)
    serve_engines: ClassVar[tuple[str, ...]] = ("torch", "onnxruntime", "onnxruntime-int8")
    explain_refusal: ClassVar[str | None] = None  # why `tlcv explain` has no maps (None: has)
    not_exportable: ClassVar[str | None] = None  # why `tlcv export` has no graph (None: has)
    # predict / serve with an ONNX Runtime engine run the graph alone, without torch
    # (deploy/runtime.py; the package's runtime.py when its answers differ from a classifier's)
    torch_free: ClassVar[bool] = True

    def claims(self, data: str | Path) -> bool:
        own = self.own("data", "claims")
        return bool(own and own(data))

    def chosen_by(self, cfg: Any) -> bool:  # a TrainConfig (config.py imports tasks)
        return False

    def prepare(self, cfg: Any) -> None:
        """Fill the task's defaults that depend on the data or other options."""

    def discover(self, data: str | Path, strict: bool) -> Source:
        own = self.own("data", "discover")
        if own is None:
            raise NotImplementedError(f"{self.name}: no data.discover and no discover()")
        return own(data, strict=strict)

    def collect(self, paths: list[str | Path]) -> list[ImageItem]:
        """predict's inputs: the image files given and those inside the folders given."""
        from ..inference import collect_images

        return collect_images(paths)

    def score(self, run: Run, items: list[ImageItem], **options) -> Scored:
        raise NotImplementedError

    def own(self, module: str, function: str) -> Callable | None:
        """``function`` of this task's own ``module`` (tasks/<name>/<module>.py), or None
        when the package has no such module (the classifier's way is used instead)."""
        package = type(self).__module__
        try:
            found = importlib.import_module(f"{package}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{module}":
                raise
            return None
        return getattr(found, function, None)

    def evaluate(self, run: Run, data: str | Path, **options) -> dict:
        own = self.own("evaluate", "evaluate")
        if own is not None:
            return own(run, data, **options)
        from ..inference import evaluate

        return evaluate(run, data, task=self, **options)

    def predict(self, run: Run, paths: list[str | Path], **options) -> list[dict]:
        own = self.own("evaluate", "predict")
        if own is not None:
            return own(run, paths, **options)
        from ..inference import predict

        return predict(run, paths, task=self, **options)

    def serve_answer(self, server, image, top_k: int) -> dict:
        """POST /predict for one uploaded PIL image (a classifier: its top classes)."""
        from ..serving.classes import top_classes

        return (self.own("serve", "answer") or top_classes)(server, image, top_k)

    def serve_picture(self, server, image, target: str | None) -> bytes:
        """POST /explain: a PNG of what the model saw (a classifier: where, by Grad-CAM)."""
        from ..serving.classes import cam_picture

        return (self.own("serve", "picture") or cam_picture)(server, image, target)

    def export_refusal(self, run: Run) -> str | None:
        """Why `tlcv export` cannot build this run's graph (None: it can)."""
        return self.not_exportable

    def report_parts(self, path: Path, metrics: dict) -> tuple[list, list]:
        """(tables, pictures) of one run folder in `tlcv report` (a classifier: the confusion
        matrix and the per-class accuracy of the first scored split)."""
        own = self.own("report", "report_parts")
        if own is not None:
            return own(path, metrics)
        from ..evaluation.figures import classifier_pictures

        return [], classifier_pictures(path, metrics)

    def explain(self, run: Run, paths: list, out: str | Path, **options) -> list[dict]:
        """`tlcv explain`: a class-activation map per image (a PNG each, and a grid)."""
        from ..errors import TlcvError

        if self.explain_refusal:
            raise TlcvError(f"{self.name} runs have no class-activation maps: "
                            f"{self.explain_refusal}")  # fmt: skip
        from ..interpret.pictures import explain_images

        return explain_images(run, paths, out, **options)

    def prediction_rows(self, results: list[dict]) -> list[list]:
        """Top-k classes per input (and, for clips, the top class after each step)."""
        rows: list[list] = [["path", "frame", "rank", "label", "score", "error"]]
        for r in results:
            if "error" in r:
                rows.append([r["path"], "", "", "", "", r["error"]])
            for rank, top in enumerate(r.get("top", []), start=1):
                rows.append([r["path"], "", rank, top["label"], top["score"], ""])
            for step in r.get("steps", []):
                rows.append([r["path"], step["frame"], 1, step["label"], step["score"], ""])
        return rows


TASKS: Registry[type[Task]] = Registry("task", load=import_submodules(__name__, __path__))


def register_task(
    name: str, *, older_names: tuple[str, ...] = (), strategy_kind: str | None = None
) -> Callable[[type[Task]], type[Task]]:
    """Register a Task class under ``name``: the model.json tags it answers to (its name and
    ``older_names``), and a registry of its strategies that imports the package's
    ``strategies`` module the first time it is asked (strategies import torch)."""

    def wrap(cls: type[Task]) -> type[Task]:
        cls.name = name
        cls.run_tags = (name, *older_names)
        loader = import_module_later(f"{cls.__module__}.strategies")
        cls.strategies = Registry(strategy_kind or f"{name} strategy", load=loader)
        return TASKS.add(name, cls)

    return wrap


DEFAULT_TASK = "classification"  # what plain image folders are; asked last when detecting


def get_task(name: str) -> Task:
    return TASKS.get(name)()


def task_for_data(data: str | Path, requested: str | None = None, cfg: Any = None) -> Task:
    """The task asked for, the one an option of its own picks, or the one that claims
    ``data`` (the default task last)."""
    if requested:
        return get_task(requested)
    if cfg is not None:
        for name in TASKS.names():
            if get_task(name).chosen_by(cfg):
                return get_task(name)
    for name in [n for n in TASKS.names() if n != DEFAULT_TASK]:
        task = get_task(name)
        if task.claims(data):
            return task
    return get_task(DEFAULT_TASK)


def task_of_run(run: Run) -> Task:
    """The task a run folder was trained for (runs from before tasks existed: by their tag)."""
    return task_of_info(run.info)


def task_of_info(info: dict) -> Task:
    """The task of a run folder's model.json (a run that records none: the default task)."""
    tag = info.get("task") or DEFAULT_TASK
    for name, cls in TASKS.items():
        if tag == name or tag in cls.run_tags:  # its name, or an older one
            return cls()
    return get_task(DEFAULT_TASK)
