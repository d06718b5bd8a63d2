"""A two-class run's decision rule, fitted on its validation split once training is over
(evaluation/binary.py): every classifier strategy calls ``binary_record`` with its validation
logits, and model.json keeps the result for evaluate and predict."""

from __future__ import annotations

import numpy as np

from ...errors import TlcvError


def binary_record(cfg, classes: list[str], logits: np.ndarray | None,
                  labels: np.ndarray | None, notes: list[str]) -> dict | None:  # fmt: skip
    """{"positive", "temperature", "threshold", ...} for a two-class run with validation
    images of both classes, else None (with a note saying why when it was asked for)."""
    from ...evaluation.binary import calibrate

    asked = (cfg.calibrate != "none" or cfg.target_sensitivity is not None or cfg.positive
             or cfg.threshold != "argmax")  # fmt: skip
    if len(classes) != 2:
        if asked:
            raise TlcvError("--positive, --threshold, --target-sensitivity and --calibrate are "
                            f"for two-class runs; this one has {len(classes)} classes")  # fmt: skip
        return None
    positive = cfg.positive or classes[1]
    if positive not in classes:
        raise TlcvError(f"--positive {positive!r} is not a class",
                        hint=f"the classes: {', '.join(classes)}")  # fmt: skip
    if logits is None or len(set(np.asarray(labels).tolist())) < 2:
        notes.append("no validation images of both classes: the decision threshold stays at the "
                     "most probable class and the probabilities uncalibrated")  # fmt: skip
        return None
    temperature = cfg.calibrate == "temperature"
    record = calibrate(np.asarray(logits, np.float64), np.asarray(labels, int), classes,
                       positive, temperature, cfg.target_sensitivity, cfg.threshold)  # fmt: skip
    said = f"{positive!r} flagged at probability >= {record['threshold']:.3f} ({record['rule']})"
    if temperature:
        said += (
            f"; temperature {record['temperature']:.2f} (validation ECE "
            f"{record['validation_ece_uncalibrated']:.3f} -> {record['validation_ece']:.3f})"
        )
    notes.append(said)
    return record
