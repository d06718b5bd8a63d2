"""Reading the two domains: a labelled source, a target whose labels (if any) are set aside
for the final evaluation, and the class sets reconciled with a note."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data import IMAGE_SUFFIXES, ImageItem, discover, file_identity
from ..errors import TlcvError


@dataclass
class Domains:
    source: list[ImageItem]  # labelled
    target: list[ImageItem]  # labels removed: what training sees
    target_labels: list[str] | None  # kept apart, for the final evaluation only
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _flat_images(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_domains(source_path: str, target_path: str, *, strict: bool = False) -> Domains:
    source = discover(source_path, strict=strict)
    notes = [f"source: {n}" for n in source.notes]
    skipped = list(source.missing)
    target_dir = Path(target_path).expanduser()
    if not target_dir.exists():
        raise TlcvError(
            f"target path does not exist: {target_dir}",
            path=str(target_dir),
            hint="give a folder of target images (CLASS/ sub-folders optional)",
        )
    flat = _flat_images(target_dir) if target_dir.is_dir() else []
    has_class_dirs = target_dir.is_dir() and any(p.is_dir() for p in target_dir.iterdir())
    if flat and not has_class_dirs:
        target_items = [ImageItem(str(p), None, file_identity(p)) for p in flat]
        target_labels = None
        notes.append(
            f"target {target_dir} has no class folders: adapting without target labels, so no "
            "target accuracy can be reported"
        )
    else:
        try:
            target = discover(target_path, strict=strict)
        except TlcvError as exc:
            if "no images found" in exc.message:
                raise TlcvError(
                    f"the target {target_dir} holds no images",
                    path=str(target_dir),
                    hint="domain adaptation needs target images (labels are optional)",
                ) from exc
            raise
        notes += [f"target: {n}" for n in target.notes]
        skipped += list(target.missing)
        target_items = target.all_items()
        target_labels = [it.label for it in target_items]

    source_items = source.all_items()
    source_classes = sorted({it.label for it in source_items})
    classes = source_classes
    if target_labels is not None:
        target_classes = sorted(set(target_labels))
        shared = sorted(set(source_classes) & set(target_classes))
        if not shared:
            raise TlcvError(
                "source and target share no class",
                hint=f"source classes: {', '.join(source_classes[:20])}; "
                f"target classes: {', '.join(target_classes[:20])}",
            )
        only_source = sorted(set(source_classes) - set(shared))
        only_target = sorted(set(target_classes) - set(shared))
        if only_source or only_target:
            notes.append(
                f"adapting on the {len(shared)} classes both domains have; left out: "
                f"source-only classes {only_source or 'none'}, "
                f"target-only classes {only_target or 'none'}"
            )
            keep = set(shared)
            source_items = [it for it in source_items if it.label in keep]
            pairs = [(it, lab) for it, lab in zip(target_items, target_labels, strict=True)]
            pairs = [(it, lab) for it, lab in pairs if lab in keep]
            target_items = [it for it, _ in pairs]
            target_labels = [lab for _, lab in pairs]
        classes = shared
    if not target_items:
        raise TlcvError(
            f"the target {target_dir} holds no usable images",
            path=str(target_dir),
            hint="domain adaptation needs target images (labels are optional)",
        )
    unlabelled = [replace(it, label=None) for it in target_items]
    return Domains(source_items, unlabelled, target_labels, classes, notes, skipped)


def select_files(domains: Domains, source_spec: str | None, target_spec: str | None) -> Domains:
    """Only the files whose names match ``--source-include`` / ``--target-include``."""
    from dataclasses import replace

    from ..data.select import matching

    keep_s = matching(domains.source, source_spec, "source")
    keep_t = matching(domains.target, target_spec, "target")
    labels = domains.target_labels
    return replace(
        domains,
        source=[domains.source[i] for i in keep_s],
        target=[domains.target[i] for i in keep_t],
        target_labels=None if labels is None else [labels[i] for i in keep_t],
    )
