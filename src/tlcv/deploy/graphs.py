"""Which ONNX graphs in a run folder may run: only the ones tlcv itself wrote there.

A graph's metadata can be copied into any file, so it proves nothing about the graph. At
export the graph's SHA-256 goes into the run's model.json (``graphs``: path in the run folder
-> digest); before a graph is used its digest is compared with that record, and its inputs and
outputs with what the run expects, before the first batch. A graph that fails either is never
run and never silently written over: the message names the file and the command that replaces
it on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TlcvError
from ..io import sha256_file, write_json
from .engine import OnnxEngine

if TYPE_CHECKING:  # torch-free: a Run or deploy.runtime's GraphRun (both: .path, .info)
    from ..runs import Run

RECORD = "graphs"


def _key(run: Run, path: Path) -> str | None:
    """The graph's path inside the run folder (the record's key), or None outside it."""
    try:
        return Path(path).resolve().relative_to(run.path.resolve()).as_posix()
    except ValueError:
        return None


def record_graph(run: Run, path: Path) -> str:
    """Note the SHA-256 of a graph tlcv just wrote (model.json, atomically); return it. A graph
    written outside the run folder is not recorded: its .verify.json carries the digest."""
    digest = sha256_file(path)
    key = _key(run, path)
    if key is not None:
        graphs = dict(run.info.get(RECORD) or {})
        graphs[key] = digest
        run.info[RECORD] = graphs
        write_json(run.path / "model.json", run.info)
    return digest


def check_exportable(run: Run) -> None:
    """Refuse, in one line, a run whose task or strategy has no graph."""
    from ..tasks import task_of_info

    task = task_of_info(run.info)
    reason = task.export_refusal(run)
    if reason:
        raise TlcvError(
            f"{task.name} runs cannot be exported to ONNX yet: {reason}",
            hint=f"use the torch engine: tlcv predict {run.path} INPUT",
            path=str(run.path),
        )
    if run.info.get("strategy") == "classical":
        raise TlcvError(
            "a classical run (HOG / colour / LBP from scikit-image) is not a network; there is "
            "no graph to export",
            hint="export a run of the features, finetune or scratch strategies",
            path=str(run.path),
        )


def _foreign(run: Run, path: Path, why: str) -> TlcvError:
    return TlcvError(
        f"{path} is not a graph tlcv exported for this run ({why}); it will not be run",
        path=str(path),
        hint=f"if you mean to replace it, export again: tlcv export {run.path}",
    )


def trusted_engine(
    run: Run,
    path: Path,
    fingerprint: str,
    outputs: dict[str, int | None],
    input_size: int | None,
) -> OnnxEngine | None:
    """The graph at ``path`` as a session, when it is the one tlcv recorded and was exported
    from the run's current weights; None when there is none yet or it is an out-of-date graph
    of tlcv's own (the caller exports it again). ``outputs`` maps each output the caller reads
    to its width (None: not checked)."""
    path = Path(path)
    if not path.is_file():
        return None
    recorded = (run.info.get(RECORD) or {}).get(_key(run, path) or "")
    if not recorded:
        raise _foreign(run, path, "model.json records no export of it")
    if sha256_file(path) != recorded:
        raise _foreign(run, path, "its SHA-256 differs from the one model.json recorded")
    engine = OnnxEngine(path)
    engine.sha256 = recorded  # checked: callers naming the graph need not hash it again
    if engine.metadata.get("run_fingerprint") != fingerprint:
        return None  # tlcv's own graph of weights the run has since replaced
    check_signature(engine, outputs, input_size)
    return engine


def check_signature(
    engine: OnnxEngine, outputs: dict[str, int | None], input_size: int | None
) -> None:
    """The graph takes uint8 (B, 3, S, S) and returns the named outputs with their widths:
    checked before the first batch, so a misfit is one line, not a failure mid-prediction."""
    (graph_input,) = engine.session.get_inputs()
    shape = list(graph_input.shape)
    problems = []
    if graph_input.type != "tensor(uint8)":
        problems.append(f"its input is {graph_input.type}, not tensor(uint8)")
    if len(shape) not in (4, 5) or shape[-3] != 3:  # images, or a clip's frames (1, T, 3, S, S)
        problems.append(f"its input has shape {shape}, not (batch, 3, S, S)")
    elif input_size and any(isinstance(s, int) and s != input_size for s in shape[-2:]):
        problems.append(f"its input is {shape[2]}x{shape[3]}, the run's {input_size}x{input_size}")
    found = {o.name: list(o.shape) for o in engine.session.get_outputs()}
    for name, width in outputs.items():
        if name not in found:
            problems.append(f"it has no output {name!r} (it has {', '.join(found) or 'none'})")
        elif width is not None and found[name] and found[name][-1] != width:
            problems.append(f"its output {name!r} is {found[name][-1]} wide, not {width}")
    if problems:
        raise TlcvError(
            f"{engine.path} does not fit its run: {'; '.join(problems)}",
            path=str(engine.path),
            hint="export it again with `tlcv export RUN`",
        )
