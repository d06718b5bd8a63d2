"""Classifiers on frozen features, with scikit-learn's estimator conventions.

``fit`` chooses the regularisation by cross-validation on the training data only, learned
attributes end in ``_``, and ``to_head()`` exports the fitted model as a torch head (with the
standardisation folded into the first layer) for saving in safetensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from ..registry import Registry
from .modules import KNNHead, build_head

CLASSIFIERS: Registry[Callable[..., FeatureClassifier]] = Registry("classifier")
register_classifier = CLASSIFIERS.register


def get_classifier(name: str, **params) -> FeatureClassifier:
    return CLASSIFIERS.get(name)(**params)


def _cv(y: np.ndarray, max_folds: int, seed: int) -> StratifiedKFold | None:
    """Stratified folds, as many as the rarest class allows; None when it has one image."""
    folds = min(max_folds, int(np.bincount(y).min()))
    return StratifiedKFold(folds, shuffle=True, random_state=seed) if folds >= 2 else None


class FeatureClassifier(ClassifierMixin, BaseEstimator):
    """Base: scale, search a grid by CV, refit on all training data, export as a torch head."""

    param_grid: dict = {}

    def __init__(self, cv_folds: int = 5, seed: int = 0):
        self.cv_folds = cv_folds
        self.seed = seed

    def _estimator(self, **params):
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray) -> FeatureClassifier:
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        self.classes_ = np.unique(y)
        y_idx = np.searchsorted(self.classes_, y)
        self.scaler_ = StandardScaler().fit(X)
        Xs = self.scaler_.transform(X)
        cv = _cv(y_idx, self.cv_folds, self.seed)
        grid = self._grid(len(X))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if cv is not None and any(len(v) > 1 for v in grid.values()):
                search = GridSearchCV(
                    self._estimator(), grid, cv=cv, scoring="accuracy", n_jobs=1, refit=True
                )
                search.fit(Xs, y_idx)
                self.best_params_ = search.best_params_
                self.cv_score_ = float(search.best_score_)
                self.model_ = search.best_estimator_
            else:
                self.best_params_ = {k: v[len(v) // 2] for k, v in grid.items()}
                self.cv_score_ = None
                self.model_ = self._estimator(**self.best_params_).fit(Xs, y_idx)
        return self

    def _grid(self, n: int) -> dict:
        return self.param_grid

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self.to_head()(torch.as_tensor(np.asarray(X, dtype=np.float32)))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    # -- export -----------------------------------------------------------------------------
    def head_spec(self) -> dict:
        raise NotImplementedError

    def to_head(self) -> nn.Module:
        head = build_head(self.head_spec())
        head.load_state_dict(self._head_state())
        return head.eval()

    def _fold_scaler(self, W: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """W (x - mu) / s + b  ==  (W / s) x + (b - W mu / s)."""
        scale, mean = self.scaler_.scale_, self.scaler_.mean_
        W2 = W / scale[None, :]
        return torch.tensor(W2, dtype=torch.float32), torch.tensor(
            b - W2 @ mean, dtype=torch.float32
        )

    @staticmethod
    def _two_class(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Binary sklearn models keep one score row; as logits [0, s] softmax gives sigmoid(s)."""
        if W.shape[0] == 1:
            return np.vstack([np.zeros_like(W), W]), np.concatenate([[0.0], b])
        return W, b


class _LinearExport(FeatureClassifier):
    def head_spec(self) -> dict:
        return {
            "type": "linear",
            "in_features": int(self.scaler_.mean_.shape[0]),
            "num_classes": int(len(self.classes_)),
        }

    def _head_state(self) -> dict:
        W, b = self._two_class(self.model_.coef_, np.atleast_1d(self.model_.intercept_))
        weight, bias = self._fold_scaler(W, b)
        return {"weight": weight, "bias": bias}


@register_classifier("logreg")
class LogisticProbe(_LinearExport):
    """Multinomial logistic regression; C from a log grid by stratified CV (the default head)."""

    param_grid = {"C": [0.001, 0.01, 0.1, 1.0, 10.0]}

    def _estimator(self, **params):
        return LogisticRegression(max_iter=300, tol=1e-3, **params)


@register_classifier("svm")
class LinearSVMProbe(_LinearExport):
    """Linear SVM (one-vs-rest); scores are margins, softmaxed for ranking, not calibrated."""

    param_grid = {"C": [0.0001, 0.001, 0.01, 0.1, 1.0]}

    def _estimator(self, **params):
        return LinearSVC(max_iter=3000, dual="auto", **params)


@register_classifier("knn")
class KNNProbe(FeatureClassifier):
    """Cosine k-NN; k chosen by CV. Stores the (standardised) training features in the head."""

    def _grid(self, n: int) -> dict:
        return {"n_neighbors": [k for k in (1, 3, 5, 10, 20) if k <= max(1, n // 2)]}

    def _estimator(self, **params):
        return KNeighborsClassifier(metric="cosine", weights="uniform", **params)

    def fit(self, X, y):
        super().fit(X, y)
        self.bank_ = self.scaler_.transform(np.asarray(X, dtype=np.float32)).astype(np.float32)
        self.bank_labels_ = np.searchsorted(self.classes_, np.asarray(y))
        return self

    def head_spec(self) -> dict:
        return {
            "type": "knn",
            "in_features": int(self.bank_.shape[1]),
            "num_classes": int(len(self.classes_)),
            "bank_size": int(len(self.bank_)),
            "k": int(self.best_params_["n_neighbors"]),
        }

    def to_head(self) -> nn.Module:
        # The scaler is folded into the bank: compare standardised queries to it.
        spec = self.head_spec()
        head = nn.Sequential(_Standardize(self.scaler_), build_head(spec))
        knn: KNNHead = head[1]
        knn.bank.copy_(torch.from_numpy(self.bank_))
        knn.bank_labels.copy_(torch.from_numpy(self.bank_labels_).long())
        return head.eval()


class _Standardize(nn.Module):
    def __init__(self, scaler: StandardScaler | None = None, dim: int | None = None):
        super().__init__()
        d = dim if scaler is None else scaler.mean_.shape[0]
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        if scaler is not None:
            self.mean.copy_(torch.tensor(scaler.mean_, dtype=torch.float32))
            self.scale.copy_(torch.tensor(scaler.scale_, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.scale


@register_classifier("mlp")
class MLPProbe(FeatureClassifier):
    """One hidden ReLU layer (512); weight decay alpha by CV, early stopping on big sets."""

    param_grid = {"alpha": [1e-4, 1e-2, 1.0]}

    def _estimator(self, **params):
        return MLPClassifier(
            hidden_layer_sizes=(512,), max_iter=200, random_state=self.seed, **params
        )

    def head_spec(self) -> dict:
        return {
            "type": "mlp",
            "sizes": [int(self.scaler_.mean_.shape[0]), 512, int(len(self.classes_))],
        }

    def _head_state(self) -> dict:
        (W1, W2), (b1, b2) = self.model_.coefs_, self.model_.intercepts_
        w1, bias1 = self._fold_scaler(W1.T, b1)
        W2, b2 = self._two_class(W2.T, b2)
        return {
            "0.weight": w1,
            "0.bias": bias1,
            "2.weight": torch.tensor(W2, dtype=torch.float32),
            "2.bias": torch.tensor(b2, dtype=torch.float32),
        }


def head_from_state(spec: dict, state: dict[str, torch.Tensor]) -> nn.Module:
    """Rebuild a saved feature head (knn heads carry their standardiser in front)."""
    if spec["type"] == "knn":
        head = nn.Sequential(_Standardize(dim=spec["in_features"]), build_head(spec))
    else:
        head = build_head(spec)
    head.load_state_dict(state, strict=True)
    return head.eval()
