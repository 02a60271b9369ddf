"""The lesion classifier as plain data: fitted with scikit-learn, stored and evaluated as JSON.

Two kinds (:class:`ClassifierKind`), both ``raw(x)`` → ``P = sigmoid(raw)``:

* ``logistic`` — L2 logistic regression on standardized features:
  ``raw = intercept + Σ coef_f (x_f − mean_f) / scale_f`` (``sklearn.linear_model.LogisticRegression``);
* ``trees`` — gradient-boosted regression trees (``sklearn.ensemble.GradientBoostingClassifier``,
  log-loss): ``raw = init + learning_rate · Σ_t leaf_t(x)``; each tree is stored as the arrays
  ``left``, ``right`` (−1 at a leaf), ``feature``, ``threshold`` (go left when ``x ≤ threshold``)
  and ``value`` of its ``tree_``, and ``cover`` (optional; written since missing-sequence
  support): the training weight reaching each node (``weighted_n_node_samples``).

Missing features (NaN: the features of a sequence the exam lacks, see
:mod:`gdsynth.detection.stage_features`) carry no evidence either way:

* ``logistic``: a missing feature takes its training mean, i.e. standardized value 0, so it
  adds nothing to the log-odds (the prediction of the other features alone, at the average of
  the missing one);
* ``trees``: at a split on a missing feature both branches are followed, weighted by the
  training cover of each child; the leaf values are averaged with those weights: the tree's
  expectation over the training candidates that reached that split (the path-dependent
  marginalization TreeSHAP uses). A trees file without ``cover`` cannot do this and refuses to
  score missing features (:class:`ModelError`: refit the stage).

:func:`model_from_dict` validates every field (types, finite numbers, array lengths, child
indices strictly after their parent so evaluation always ends, bounded sizes): the file is data,
nothing in it is executed, and anything else is refused with a :class:`ModelError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.detection.scoring import sigmoid
from gdsynth.errors import ConfigError, ModelError, parse_choice

MAX_TREES = 2000
MAX_NODES = 4095
_TREE_FIELDS = {"left", "right", "feature", "threshold", "value"}


class ClassifierKind(str, Enum):
    """Lesion classifier families."""

    logistic = "logistic"
    trees = "trees"


def parse_kind(value: str | ClassifierKind) -> ClassifierKind:
    return parse_choice(ClassifierKind, value, "classifier")


def raw_score(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Log-odds (N,) of a validated model for a feature matrix (N, F); NaN entries are missing
    features (see the module doc)."""
    x = np.asarray(x, dtype=np.float64)
    if model["kind"] == ClassifierKind.logistic.value:
        z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
        z = np.where(np.isnan(z), 0.0, z)  # the training mean: no evidence
        return model["intercept"] + z @ np.asarray(model["coef"])
    if np.isnan(x).any():
        return float(model["init"]) + model["learning_rate"] * sum(
            _expected_leaf(tree, x) for tree in model["trees"])
    out = np.full(x.shape[0], float(model["init"]))
    rows = np.arange(x.shape[0])
    for tree in model["trees"]:
        left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
        feat, thr = np.asarray(tree["feature"]), np.asarray(tree["threshold"])
        node = np.zeros(x.shape[0], dtype=np.int64)
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = x[rows, np.maximum(feat[node], 0)] <= thr[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        out += model["learning_rate"] * np.asarray(tree["value"])[node]
    return out


def _expected_leaf(tree: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Leaf value (N,) of one tree, averaged over both branches (by training cover) at each split
    on a missing (NaN) feature; exactly the reached leaf's value for complete rows."""
    cover = tree.get("cover")
    if cover is None:
        raise ModelError(None, "this lesion classifier (gradient-boosted trees without node "
                               "cover) cannot score candidates with missing-sequence features; "
                               "fit the lesion stage again")
    left, right, feat = tree["left"], tree["right"], tree["feature"]
    weight = np.zeros((x.shape[0], len(left)))
    weight[:, 0] = 1.0
    for i, (lo, hi) in enumerate(zip(left, right, strict=True)):
        if lo < 0:
            continue
        xi = x[:, feat[i]]
        share = cover[lo] / (cover[lo] + cover[hi])
        go_left = np.where(np.isnan(xi), share, (xi <= tree["threshold"][i]).astype(float))
        weight[:, lo] += weight[:, i] * go_left
        weight[:, hi] += weight[:, i] * (1.0 - go_left)
    leaf = np.asarray(left) < 0
    return weight[:, leaf] @ np.asarray(tree["value"])[leaf]


def predict_proba(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """P(true lesion) (N,) of a validated model."""
    return sigmoid(raw_score(model, x)) if len(x) else np.zeros(0)


def fit_model(x: np.ndarray, y: np.ndarray, kind: ClassifierKind | str, *, seed: int = 0
              ) -> dict[str, Any]:
    """Fit one classifier (scikit-learn) and return it as plain data (see module doc)."""
    kind = parse_kind(kind)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    if kind is ClassifierKind.logistic:
        from sklearn.linear_model import LogisticRegression

        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        clf = LogisticRegression(C=0.5, max_iter=2000).fit((x - mean) / scale, y)
        return {"kind": kind.value, "mean": mean.tolist(), "scale": scale.tolist(),
                "coef": clf.coef_[0].tolist(), "intercept": float(clf.intercept_[0])}
    from sklearn.ensemble import GradientBoostingClassifier

    clf = GradientBoostingClassifier(n_estimators=150, max_depth=2, learning_rate=0.05,
                                     subsample=0.8, min_samples_leaf=3, random_state=seed).fit(x, y)
    trees = []
    for est in clf.estimators_[:, 0]:
        t = est.tree_
        trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                      "feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                      "value": t.value[:, 0, 0].tolist(),
                      "cover": t.weighted_n_node_samples.astype(float).tolist()})
    model = {"kind": kind.value, "learning_rate": float(clf.learning_rate), "init": 0.0,
             "trees": trees}
    # the constant initial log-odds: what sklearn adds to the trees (checked on every row)
    offset = clf.decision_function(x) - raw_score(model, x)
    if not np.allclose(offset, offset[0], atol=1e-6):
        raise ConfigError(None, "exported trees disagree with scikit-learn's decision function")
    model["init"] = float(offset[0])
    return model


def _floats(path: Path | None, name: str, value: Any, n: int | None = None) -> list[float]:
    if not isinstance(value, list) or (n is not None and len(value) != n):
        raise ModelError(path, f"classifier field {name!r} must be a list of {n} numbers")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ModelError(path, f"classifier field {name!r} holds a non-finite or non-number")
    return [float(v) for v in value]


def _ints(path: Path | None, name: str, value: Any, n: int) -> list[int]:
    if not isinstance(value, list) or len(value) != n or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ModelError(path, f"classifier field {name!r} must be a list of {n} integers")
    return list(value)


def _number(path: Path | None, name: str, value: Any) -> float:
    return _floats(path, name, [value])[0]


def model_from_dict(data: Any, n_features: int, path: Path | None = None) -> dict[str, Any]:
    """A validated copy of a classifier dict (see module doc); :class:`ModelError` otherwise."""
    if not isinstance(data, dict):
        raise ModelError(path, "classifier must be a JSON object")
    kind = data.get("kind")
    if kind == ClassifierKind.logistic.value:
        expected = {"kind", "mean", "scale", "coef", "intercept"}
        if set(data) != expected:
            raise ModelError(path, f"logistic classifier needs exactly the fields {sorted(expected)}")
        scale = _floats(path, "scale", data["scale"], n_features)
        if any(s <= 0 for s in scale):
            raise ModelError(path, "classifier field 'scale' must be positive")
        return {"kind": kind, "mean": _floats(path, "mean", data["mean"], n_features),
                "scale": scale, "coef": _floats(path, "coef", data["coef"], n_features),
                "intercept": _number(path, "intercept", data["intercept"])}
    if kind == ClassifierKind.trees.value:
        expected = {"kind", "learning_rate", "init", "trees"}
        if set(data) != expected:
            raise ModelError(path, f"trees classifier needs exactly the fields {sorted(expected)}")
        trees = data["trees"]
        if not isinstance(trees, list) or not 1 <= len(trees) <= MAX_TREES:
            raise ModelError(path, f"'trees' must be a list of 1..{MAX_TREES} trees")
        clean = []
        for t, tree in enumerate(trees):
            if not isinstance(tree, dict) or not _TREE_FIELDS <= set(tree) <= {*_TREE_FIELDS,
                                                                               "cover"}:
                raise ModelError(path, f"tree {t}: needs left, right, feature, threshold, value "
                                       "(and optionally cover)")
            n = len(tree["left"]) if isinstance(tree["left"], list) else 0
            if not 1 <= n <= MAX_NODES:
                raise ModelError(path, f"tree {t}: 1..{MAX_NODES} nodes")
            left, right = _ints(path, "left", tree["left"], n), _ints(path, "right", tree["right"], n)
            feature = _ints(path, "feature", tree["feature"], n)
            for i in range(n):
                leaf = left[i] == -1
                if leaf != (right[i] == -1) or (not leaf and not (
                        i < left[i] < n and i < right[i] < n and 0 <= feature[i] < n_features)):
                    raise ModelError(path, f"tree {t}, node {i}: invalid children or feature")
            node = {"left": left, "right": right, "feature": feature,
                    "threshold": _floats(path, "threshold", tree["threshold"], n),
                    "value": _floats(path, "value", tree["value"], n)}
            if "cover" in tree:
                node["cover"] = _floats(path, "cover", tree["cover"], n)
                if any(c <= 0 for c in node["cover"]):
                    raise ModelError(path, f"tree {t}: 'cover' must be positive")
            clean.append(node)
        return {"kind": kind, "learning_rate": _number(path, "learning_rate", data["learning_rate"]),
                "init": _number(path, "init", data["init"]), "trees": clean}
    valid = ", ".join(k.value for k in ClassifierKind)
    raise ModelError(path, f"classifier kind {kind!r} unknown; valid: {valid}")


def check_feature_names(names: Any, known: Sequence[str], path: Path | None = None) -> list[str]:
    """The stored feature names, each a known feature, no repeats."""
    if not isinstance(names, list) or not names or len(set(map(str, names))) != len(names) or \
            not all(isinstance(n, str) and n in known for n in names):
        raise ModelError(path, f"'features' must be distinct names among {list(known)}")
    return list(names)
