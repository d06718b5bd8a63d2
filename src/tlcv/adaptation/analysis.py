"""How far apart the domains are: the proxy A-distance and a 2-D t-SNE picture, before and
after adaptation."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _balanced(fs: np.ndarray, ft: np.ndarray, limit: int, seed: int):
    rng = np.random.default_rng(seed)
    n = min(len(fs), len(ft), limit)
    return fs[rng.choice(len(fs), n, replace=False)], ft[rng.choice(len(ft), n, replace=False)]


def proxy_a_distance(fs: np.ndarray, ft: np.ndarray, *, seed: int = 0, limit: int = 1000) -> float:
    """2 (1 - 2 err) of a linear classifier told to separate the domains (Ben-David et al.):
    about 0 when they are indistinguishable, 2 when perfectly separable. Equal-sized samples,
    half to train the classifier and half to measure its error."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = _balanced(fs, ft, limit, seed)
    x = np.concatenate([a, b])
    y = np.r_[np.ones(len(a)), np.zeros(len(b))]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(x_tr, y_tr)
    error = 1.0 - clf.score(x_te, y_te)
    return float(2.0 * (1.0 - 2.0 * error))


def _embed_2d(fs: np.ndarray, ft: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.concatenate([fs, ft]).astype(np.float32)
    if x.shape[1] > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(5, (len(x) - 1) // 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def plot_domains(
    panels: dict[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    *,
    seed: int = 0,
    per_domain: int = 400,
) -> Path:
    """One t-SNE panel per (title -> (source features, target features)), source vs target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_bytes

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (title, (fs, ft)) in zip(axes[0], panels.items(), strict=True):
        a, b = _balanced(fs, ft, per_domain, seed)
        xy = _embed_2d(a, b, seed)
        ax.scatter(*xy[: len(a)].T, s=6, c="tab:blue", alpha=0.6, label="source")
        ax.scatter(*xy[len(a) :].T, s=6, c="tab:red", alpha=0.6, label="target")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="best", markerscale=3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    return path
