"""Anomaly detection: tlcv against anomalib (PatchCore, PaDiM) on MVTec bottle and the
magnetic tiles, how tlcv's cost grows with the good images, nearest-neighbour search on a
million-patch bank, and a backbone comparison.

Rerun (anomalib and faiss-cpu are the references here, not tlcv dependencies):
    .venv/bin/pip install anomalib==2.7.0 faiss-cpu
    .venv/bin/python benchmarks/bench_anomaly.py [--parts compare scaling search backbones
        selection] [--coreset 0.01] [--seeds 10] [--sets tile] [--out bench_out/anomaly]

Fair by construction, in one run: the same images decoded by the same code at the same size
(256 x 256), the same backbone (torchvision MobileNetV2) with the same offline ImageNet
weights, the same feature maps (PatchCore: strides 8 + 16 = features.6 + features.13; PaDiM:
strides 4, 8, 16), the same coreset share, 9 re-weighting neighbours, 100 PaDiM channels,
and one metric code (tlcv's, checked against hand-computed cases in tests/test_anomaly.py)
on both libraries' maps and scores. PaDiM is paired by seed: anomalib gets the channels tlcv
draws for the same seed. How the weights reach anomalib without a network: its
TimmFeatureExtractor accepts an nn.Module, so it gets torchvision's mobilenet_v2 with the
shared file loaded by hand (``pre_trained`` is then unused). anomalib runs as its torch
models (PatchcoreModel, PadimModel) in a plain loop: no Lightning engine overhead is counted
against it. Every case is its own process, so its peak RSS is its own.

--coreset: 0.1 is both libraries' default; anomalib's greedy selection takes ~70 ms a step
here (~25 min for the bottle's 21,400 steps), so the recorded comparison uses 0.01 (PatchCore
paper, table 5: 1% loses little) and tlcv's own 0.1 figures are in the backbone part.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = {"bottle": "anomaly/mvtec_bottle", "tile": "anomaly/magnetic_tile"}
SIZE = 256
TAPS = {"patchcore": ["features.6", "features.13"], "padim": ["features.3", "features.6",
                                                              "features.13"]}  # fmt: skip


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _items(data: Path):
    from tlcv.tasks.anomaly.data import discover

    source = discover(data)
    return source.train, source.test, source.masks


def _score(result_scores, result_maps, test, masks: bool) -> dict:
    """Image AUROC, pixel AUROC and PRO with tlcv's metric code, for either library."""
    import numpy as np

    from tlcv.tasks.anomaly import metrics as M
    from tlcv.tasks.anomaly.evaluate import _truth
    from tlcv.tasks.anomaly.pictures import resize_map

    labels = np.array([i.defective for i in test])
    out = {"image_auroc": M.auroc(labels, result_scores)}
    if masks:
        from PIL import Image

        truths, maps = [], []
        for item, heat in zip(test, result_maps, strict=True):
            with Image.open(item.path) as img:
                size = (img.height, img.width)
            truth = _truth(item, size)
            if truth is not None:
                truths.append(truth)
                maps.append(resize_map(heat, truth.shape))
        flat = np.concatenate([t.ravel() for t in truths])
        out["pixel_auroc"] = M.auroc(flat, np.concatenate([m.ravel() for m in maps]))
        out["pro"] = M.pro(truths, maps)
    return out


def case_tlcv(method: str, data: Path, coreset: float, backbone: str, max_images=None,
              seed: int = 0) -> dict:  # fmt: skip
    import tempfile

    import numpy as np

    from tlcv import api
    from tlcv.tasks.anomaly.evaluate import scorer_of

    weights = str(SHARED / "weights" / "mobilenet_v2-b0353104.pth") \
        if backbone == "mobilenet_v2" else "imagenet"  # fmt: skip
    _, test, masks = _items(data)
    with tempfile.TemporaryDirectory() as tmp:
        run = api.train(data, Path(tmp) / "run", task="anomaly", method=method, backbone=backbone,
                        weights=weights, image_size=SIZE, coreset=coreset, holdout=0.0,
                        max_images=max_images, batch_size=16, seed=seed)  # fmt: skip
        fit = run.metrics["fit"]["seconds"]
        score = scorer_of(run, batch_size=16)
        started = time.perf_counter()
        got = score([i.path for i in test])
        infer = time.perf_counter() - started
        head = run.info["head"]
    scores = np.asarray(got.scores)
    return {"fit_s": fit, "infer_images_per_s": len(test) / infer, "infer_ms_per_image":
            1000 * infer / len(test), "bank": head.get("bank_size"),
            "fitted_images": run.metrics["fit"]["images"],
            **_score(scores, got.maps, test, masks)}  # fmt: skip


IMAGENET = type("P", (), {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})


def _mobilenet_v2():
    """torchvision's MobileNetV2 with the shared ImageNet file: how the weights reach anomalib
    offline (its feature extractor takes an nn.Module)."""
    import torch
    import torchvision

    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(
        torch.load(SHARED / "weights" / "mobilenet_v2-b0353104.pth", weights_only=True)
    )
    return net


def _anomalib_forward(model, items):
    """Every batch of ``items`` through an anomalib torch model, decoded and normalised by
    tlcv's code (as tlcv's own runs are); the outputs in order."""
    import torch

    from tlcv.data import normalize
    from tlcv.tasks.anomaly.loading import image_batches

    with torch.no_grad():
        for _, images, _, _ in image_batches([i.path for i in items], SIZE, 16):
            yield model(normalize(images, IMAGENET, torch.device("cpu"), channels_last=False))


def _anomalib_scores(model, test):
    """(image scores, maps) of the test items from a fitted anomalib model."""
    import numpy as np

    model.eval()
    scores, maps = [], []
    for out in _anomalib_forward(model, test):
        scores.append(out.pred_score.reshape(-1).numpy())
        maps.extend(m[0].numpy() for m in out.anomaly_map)
    return np.concatenate(scores), maps


def case_anomalib(method: str, data: Path, coreset: float, seed: int = 0) -> dict:
    import torch

    torch.manual_seed(seed)  # its coreset start and projection draw from it
    net = _mobilenet_v2()
    train, test, masks = _items(data)
    if method == "patchcore":
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel

        model = PatchcoreModel(layers=TAPS[method], backbone=net, pre_trained=False,
                               num_neighbors=9)  # fmt: skip
    else:
        from anomalib.models.image.padim.torch_model import PadimModel

        from tlcv.tasks.anomaly.methods.padim import draw_channels

        model = PadimModel(layers=TAPS[method], backbone=net, pre_trained=False, n_features=100)
        # Paired by seed: the same 100 of the 152 channels (features.3, .6, .13 concatenated in
        # the same order by both) as tlcv draws for this seed, so the libraries differ only in
        # how they compute, not in which random channels they were dealt.
        model.idx.copy_(draw_channels(model.n_features_original, 100, seed))
    started = time.perf_counter()
    model.train()
    for _ in _anomalib_forward(model, train):
        pass
    with torch.no_grad():
        if method == "patchcore":
            model.subsample_embedding(coreset)
        else:
            model.fit()
    fit = time.perf_counter() - started
    started = time.perf_counter()
    scores, maps = _anomalib_scores(model, test)
    infer = time.perf_counter() - started
    bank = model.memory_bank.shape[0] if method == "patchcore" else None
    return {"fit_s": fit, "infer_images_per_s": len(test) / infer,
            "infer_ms_per_image": 1000 * infer / len(test), "bank": bank,
            **_score(scores, maps, test, masks)}  # fmt: skip


def case_selection(data: Path, coreset: float, seed: int) -> dict:
    """anomalib's PatchCore pipeline (its embeddings, its nearest-neighbour search, its maps)
    with two memory banks chosen from the same embeddings: its own KCenterGreedy (sparse
    random projection) and tlcv's ``greedy_coreset`` (exact features), both started by this
    seed. What differs between the two rows is only the coreset selection."""
    import torch
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    from tlcv.tasks.anomaly.search import greedy_coreset

    torch.manual_seed(seed)
    train, test, masks = _items(data)
    model = PatchcoreModel(layers=TAPS["patchcore"], backbone=_mobilenet_v2(),
                           pre_trained=False, num_neighbors=9)  # fmt: skip
    model.train()
    for _ in _anomalib_forward(model, train):
        pass
    everything = torch.vstack(model.embedding_store)  # subsample_embedding clears the store
    model.subsample_embedding(coreset)
    banks = {"anomalib_selection": model.memory_bank}
    count = banks["anomalib_selection"].shape[0]
    banks["tlcv_selection"] = everything[greedy_coreset(everything, count, seed=seed)]
    out = {}
    for name, bank in banks.items():
        model.memory_bank = bank
        out[name] = _score(*_anomalib_scores(model, test), test, masks)
    return out


def case_search(n_bank: int = 1_000_000, dims: int = 128, queries: int = 1024) -> dict:
    """One image's patches (32 x 32) against a synthetic bank: tlcv's chunked torch search
    vs faiss's exact (flat) and approximate (HNSW) indexes."""
    import numpy as np
    import torch

    from tlcv.tasks.anomaly.search import nearest

    rng = np.random.default_rng(0)
    bank = rng.standard_normal((n_bank, dims), dtype=np.float32)
    query = rng.standard_normal((queries, dims), dtype=np.float32)
    out = {"bank": n_bank, "dims": dims, "queries": queries}
    b, q = torch.from_numpy(bank), torch.from_numpy(query)
    sq = (b * b).sum(1)
    nearest(q[:8], b, sq)
    started = time.perf_counter()
    _, exact = nearest(q, b, sq)
    out["torch_chunked_s"] = time.perf_counter() - started
    try:
        import faiss
    except ImportError:
        return out
    index = faiss.IndexFlatL2(dims)
    index.add(bank)
    started = time.perf_counter()
    _, flat = index.search(query, 1)
    out["faiss_flat_s"] = time.perf_counter() - started
    out["faiss_flat_same"] = float((flat[:, 0] == exact[:, 0].numpy()).mean())
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dims, 32)
    hnsw.add(bank)
    out["faiss_hnsw_build_s"] = time.perf_counter() - started
    started = time.perf_counter()
    _, approx = hnsw.search(query, 1)
    out["faiss_hnsw_s"] = time.perf_counter() - started
    out["faiss_hnsw_recall"] = float((approx[:, 0] == exact[:, 0].numpy()).mean())
    return out


def run_case(args, *spec: str, coreset: float | None = None) -> dict:
    """One case in a fresh process: its figures and its own peak RSS."""
    share = str(args.coreset if coreset is None else coreset)
    command = [sys.executable, __file__, "--case", *spec, "--coreset", share]
    done = subprocess.run(command, capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(args) -> None:
    kind, *rest = args.case
    if kind == "search":
        result = case_search()
    elif kind == "selection":
        name, seed = rest
        result = case_selection(SHARED / "data" / SETS[name], args.coreset, int(seed))
    elif kind == "tlcv":
        method, name, backbone, cap, seed = rest
        result = case_tlcv(method, SHARED / "data" / SETS[name], args.coreset, backbone,
                           None if cap == "all" else int(cap), int(seed))  # fmt: skip
    else:
        method, name, seed = rest
        result = case_anomalib(method, SHARED / "data" / SETS[name], args.coreset, int(seed))
    result["peak_rss_mb"] = round(_rss_mb(), 1)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["compare", "scaling", "search",
                                                       "backbones"])  # fmt: skip
    parser.add_argument("--coreset", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=2, help="Seeds per compared case.")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS),
                        help="Data sets the compare part runs on.")  # fmt: skip
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["patchcore", "padim"],
        choices=["patchcore", "padim"],
        help="Methods the compare part runs.",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "anomaly")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}

    def record(key: str, *spec: str, coreset: float | None = None) -> None:
        if key not in results or "error" in results[key]:
            results[key] = run_case(args, *spec, coreset=coreset)
            results_file.write_text(json.dumps(results, indent=1))
        print(key, json.dumps(results[key]), flush=True)

    tag = f"coreset{args.coreset:g}"
    if "compare" in args.parts:
        for name in args.sets:
            for method in args.methods:
                for seed in map(str, range(args.seeds)):
                    record(f"compare/{name}/{method}/tlcv/{tag}/seed{seed}", "tlcv", method, name,
                           "mobilenet_v2", "all", seed)  # fmt: skip
                    record(f"compare/{name}/{method}/anomalib/{tag}/seed{seed}", "anomalib",
                           method, name, seed)  # fmt: skip
    if "selection" in args.parts:  # the coreset selection alone, inside anomalib's pipeline
        for name in args.sets:
            if name == "tile":  # pixel scores need masks
                for seed in map(str, range(args.seeds)):
                    record(f"selection/{name}/{tag}/seed{seed}", "selection", name, seed)
    if "scaling" in args.parts:
        for cap in ("25", "50", "100", "all"):
            record(f"scaling/bottle/patchcore/{cap}/{tag}", "tlcv", "patchcore", "bottle",
                   "mobilenet_v2", cap, "0")  # fmt: skip
    if "search" in args.parts:
        record("search/1M", "search")
    if "backbones" in args.parts:  # the default coreset (0.1); the tiles with 2 seeds
        for name in SETS:
            for backbone in ("mobilenet_v2", "efficientnet_lite0"):
                for seed in ("0", "1") if name == "tile" else ("0",):
                    record(f"backbones/{name}/{backbone}/coreset0.1/seed{seed}", "tlcv",
                           "patchcore", name, backbone, "all", seed, coreset=0.1)  # fmt: skip


if __name__ == "__main__":
    main()
