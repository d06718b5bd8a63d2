"""Run folders of an older tlcv against this one (issue 28): every task's tiny run, trained by
both, then loaded, evaluated and predicted by this one; weights and metrics compared.

    git worktree add ../tlcv-6505ed6 6505ed6   # the release before issue 28
    .venv/bin/python benchmarks/compat_runs.py --old-src ../tlcv-6505ed6/src

Each side trains in its own interpreter (PYTHONPATH picks the code), on the same generated data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"

TRAIN = """
import json, sys
from pathlib import Path
from tlcv import api
for folder in sorted(Path(sys.argv[1]).iterdir()):
    options = json.loads((folder / "options.json").read_text())
    data = options.pop("data")
    api.train(data, folder / sys.argv[2], task=folder.name, backbone="mobilenet_v2",
              weights=sys.argv[3], batch_size=4, val_fraction=0.25, test_fraction=0.25,
              **options)
"""


def _python(code: str, src: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-src", type=Path, required=True, help="src/ of the older tlcv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "compat")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]
    from test_contracts import TINY

    from tlcv import api, load_run
    from tlcv.tasks import task_of_run

    for name, build in TINY.items():
        data, options = build(args.out / name / "data")
        (args.out / name / "options.json").write_text(json.dumps({"data": str(data), **options}))
    _python(TRAIN, args.old_src, args.out, "old", WEIGHTS)
    _python(TRAIN, ROOT / "src", args.out, "new", WEIGHTS)
    for folder in sorted(args.out.iterdir()):
        old, new = load_run(folder / "old"), load_run(folder / "new")
        task = task_of_run(old)
        key = task.score_columns[0][1]
        score = api.evaluate(old, folder / "data", out=str(folder / "eval"))[key]
        files = sorted((folder / "data").rglob("*"))
        inputs = [str(p) for p in files if p.suffix in (".png", ".jpg", ".mp4")]
        inputs = [p for p in inputs if "/masks/" not in p][:2]
        errors = sum("error" in a for a in api.predict(old, inputs))
        same_weights = (old.path / "model.safetensors").read_bytes() == (
            new.path / "model.safetensors"
        ).read_bytes()
        same_metrics = all(old.metrics.get(s) == new.metrics.get(s) for s in ("val", "test"))
        print(f"{folder.name}: old run tagged {old.info.get('task')!r} loads as {task.name}; "
              f"evaluate {key} {score:.3f}; predict errors {errors}; weights identical "
              f"{same_weights}; val/test metrics identical {same_metrics}")  # fmt: skip


if __name__ == "__main__":
    main()
