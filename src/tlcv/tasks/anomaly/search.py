"""Nearest neighbours in a memory bank and the greedy coreset that builds it, in plain torch.

Exact search as chunked matrix products (||q||^2 - 2 q.m + ||m||^2, then top-k per chunk):
the arithmetic the ONNX graph carries, and fast at the coreset banks PatchCore keeps (2k-25k
patches: ~0.1 s for an image's 1,024 patches here). Measured in benchmarks/bench_anomaly.py
on a synthetic million-patch bank: faiss-cpu's exact brute force (``faiss.knn``) is ~3x faster
than this, its HNSW index far faster but approximate (15% recall on that bank), so from
FAISS_FROM rows on, eager search uses ``faiss.knn`` when faiss-cpu is installed (the
``anomaly`` extra); exports and smaller banks stay in torch.
"""

from __future__ import annotations

import torch

CHUNK = 65_536  # bank rows per product: bounds the (queries x chunk) distance block
PROJECTION = 128  # the coreset's random-projection dimension (PatchCore, section 3.2)
FAISS_FROM = 200_000  # bank rows from which faiss's exact search is used, when installed


def _faiss():
    """faiss when installed and usable here (not while a graph is being exported)."""
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return None
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def squared_norms(rows: torch.Tensor) -> torch.Tensor:
    return (rows * rows).sum(1)


def nearest(
    query: torch.Tensor,
    bank: torch.Tensor,
    bank_sq: torch.Tensor | None = None,
    k: int = 1,
    chunk: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(squared distances, indices), each (n, k), of the ``k`` bank rows nearest each query."""
    if bank.shape[0] >= FAISS_FROM and query.device.type == "cpu" and (faiss := _faiss()):
        found = faiss.knn(query.float().contiguous().numpy(), bank.float().contiguous().numpy(),
                          min(k, bank.shape[0]))  # fmt: skip
        return torch.from_numpy(found[0]).clamp_min(0.0), torch.from_numpy(found[1])
    bank_sq = squared_norms(bank) if bank_sq is None else bank_sq
    query_sq = squared_norms(query)[:, None]
    best_d = best_i = None
    for start in range(0, bank.shape[0], chunk):
        block = bank[start : start + chunk]
        d = torch.addmm(bank_sq[None, start : start + chunk], query, block.T, alpha=-2.0)
        d = d + query_sq
        kk = min(k, block.shape[0])
        dist, idx = torch.topk(d, kk, dim=1, largest=False)
        idx = idx + start
        if best_d is None:
            best_d, best_i = dist, idx
        else:
            both_d, both_i = torch.cat([best_d, dist], 1), torch.cat([best_i, idx], 1)
            best_d, order = torch.topk(both_d, min(k, both_d.shape[1]), dim=1, largest=False)
            best_i = torch.gather(both_i, 1, order)
    return best_d.clamp_min(0.0), best_i


def greedy_coreset(
    features: torch.Tensor, count: int, seed: int = 0, projection: int = PROJECTION
) -> torch.Tensor:
    """Indices of ``count`` rows chosen by greedy k-centre selection (each pick the row farthest
    from those picked so far), on a seeded Gaussian random projection to ``projection`` dims
    (Johnson-Lindenstrauss: distances kept within a small factor, the loop ``dim/projection``
    times cheaper). Each step is one vector-matrix product over the projected rows."""
    n = features.shape[0]
    count = max(1, min(int(count), n))
    generator = torch.Generator().manual_seed(seed)
    rows = features.float()
    if rows.shape[1] > projection:
        matrix = torch.randn(rows.shape[1], projection, generator=generator) / projection**0.5
        rows = rows @ matrix
    columns = rows.T.contiguous()  # (dims, n): a row times it reads memory in order, ~3x
    sq = squared_norms(rows)  # faster than the (n, dims) matrix-vector product here
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = torch.empty(count, dtype=torch.long)
    chosen[0] = first
    min_d = torch.mm(rows[first][None], columns)[0].mul_(-2.0).add_(sq).add_(sq[first])
    step = torch.empty(1, n)
    for i in range(1, count):
        pick = int(torch.argmax(min_d))
        chosen[i] = pick
        torch.mm(rows[pick][None], columns, out=step)
        torch.minimum(min_d, step[0].mul_(-2.0).add_(sq).add_(sq[pick]), out=min_d)
    return chosen
