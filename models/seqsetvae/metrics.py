"""AUROC and AUPRC (average precision) of binary outcome scores, without scikit-learn."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

ArrayLike = torch.Tensor | np.ndarray | list


def _flat(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def _arrays(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s, y = _flat(scores), _flat(labels)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        raise ValueError("AUROC/AUPRC need both a positive and a negative label")
    return s, y


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic with ties counted as one half."""
    s, y = _arrays(scores, labels)
    ranks = rankdata(s)  # average ranks for ties
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision: sum over distinct thresholds of (recall step) x precision."""
    s, y = _arrays(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]  # a threshold takes a whole group of tied scores
    tp = np.cumsum(y)[last_of_tie]
    predicted = (np.arange(1, s.size + 1))[last_of_tie]
    precision = tp / predicted
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
