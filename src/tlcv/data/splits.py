"""Stratified splits and few-shot subsets, reproducible from a seed."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import TlcvError
from .decode import ImageItem
from .sources import Source


@dataclass
class Splits:
    train: list[ImageItem]
    val: list[ImageItem]
    test: list[ImageItem]
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # unusable listed entries

    def named(self) -> list[tuple[str, list[ImageItem]]]:
        """(name, items) of each split, in the order metrics report them."""
        return [("train", self.train), ("val", self.val), ("test", self.test)]


def _by_class(items: list[ImageItem]) -> dict[str, list[ImageItem]]:
    groups: dict[str, list[ImageItem]] = defaultdict(list)
    for item in items:
        groups[item.label].append(item)
    return dict(sorted(groups.items()))


def stratified_split(
    items: list[ImageItem], fraction: float, seed: int
) -> tuple[list[ImageItem], list[ImageItem]]:
    """Per class, move ``fraction`` of the images (rounded) to the second part.

    A class keeps at least one image in the first part, so tiny classes stay trainable.
    """
    if fraction <= 0:
        return list(items), []
    rng = random.Random(seed)
    keep, held = [], []
    for _, group in _by_class(items).items():
        group = sorted(group, key=lambda it: it.path)
        rng.shuffle(group)
        n_held = min(int(round(len(group) * fraction)), len(group) - 1)
        held.extend(group[:n_held])
        keep.extend(group[n_held:])
    return keep, held


def few_shot(
    items: list[ImageItem], per_class: int, seed: int
) -> tuple[list[ImageItem], list[str]]:
    """At most ``per_class`` images per class (the draw depends on ``seed``)."""
    rng = random.Random(seed)
    chosen, notes = [], []
    for label, group in _by_class(items).items():
        group = sorted(group, key=lambda it: it.path)
        if len(group) < per_class:
            notes.append(
                f"class {label!r} has only {len(group)} training images "
                f"(asked for {per_class}); using all of them"
            )
        chosen.extend(rng.sample(group, min(per_class, len(group))))
    return chosen, notes


def make_splits(
    source: Source,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    per_class: int | None = None,
    seed: int = 0,
    split_seed: int | None = None,
) -> Splits:
    """train/val/test from split folders when present, else stratified by ``split_seed``
    (default ``seed``); the few-shot draw uses ``seed``. Experiments fix ``split_seed`` so
    every seed's few-shot subset is scored on the same test set."""
    seed_of_split = seed if split_seed is None else split_seed
    notes = list(source.notes)
    parts = source.splits
    if "train" in parts:
        train, val, test = parts["train"], parts.get("val", []), parts.get("test", [])
        if "all" in parts:
            notes.append(f"{len(parts['all'])} items without a split are ignored")
        if not val:
            train, val = stratified_split(train, val_fraction, seed_of_split)
    else:
        pool = [it for items in parts.values() for it in items]
        train, test = stratified_split(pool, test_fraction, seed_of_split)
        train, val = stratified_split(
            train, val_fraction / max(1e-9, 1 - test_fraction), seed_of_split + 1
        )
    classes = sorted({it.label for it in train})
    if len(classes) < 2:
        raise TlcvError(
            f"training data has {len(classes)} class(es) ({', '.join(classes) or 'none'}); "
            "a classifier needs at least 2",
            hint="put each class's images in its own sub-folder",
            path=source.root,
        )
    for name, part in (("validation", val), ("test", test)):
        extra = sorted({it.label for it in part} - set(classes))
        if extra:
            notes.append(
                f"{name} split has classes absent from training ({', '.join(extra)}); "
                "their images are left out"
            )
        absent = sorted(set(classes) - {it.label for it in part})
        if part and absent:
            notes.append(f"{name} split lacks class(es): {', '.join(absent[:10])}")
    val = [it for it in val if it.label in classes]
    test = [it for it in test if it.label in classes]
    if per_class is not None:
        if per_class < 1:
            raise TlcvError(f"--per-class must be at least 1, got {per_class}")
        train, shot_notes = few_shot(train, per_class, seed)
        notes.extend(shot_notes)
    for name, part in (("validation", val), ("test", test)):
        if not part:
            notes.append(
                f"no {name} images (too few images per class to hold some out): "
                + (
                    "the model is chosen without validation data"
                    if name == "validation"
                    else "there is no test score; evaluate on other data with `tlcv evaluate`"
                )
            )
    return Splits(train, val, test, classes, notes, list(source.missing))
