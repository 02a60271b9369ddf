"""A small L2-regularized logistic regression (Newton / IRLS) in numpy, and the log-loss.

scikit-learn is only a test extra, so the calibration fits its models here. Features are
standardized inside the fit (the penalty ``l2`` acts on standardized coefficients, never on the
intercept) and the coefficients are returned on the original feature scale.
"""

from __future__ import annotations

import numpy as np

from gdsynth.detection.scoring import sigmoid


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of labels ``y`` (0/1) and probabilities ``p``."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    if y.size == 0:
        return 0.0
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, max_iter: int = 100, tol: float = 1e-8
) -> tuple[float, np.ndarray]:
    """Fit ``P(y=1) = sigmoid(b + x @ w)``; return ``(b, w)`` on the original scale of ``x`` (N, F).

    Minimizes mean log-loss + ``l2``/2 · |w_standardized|² by Newton's method with step halving.
    Constant columns get weight 0.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, f = x.shape
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    active = sd > 1e-12
    z = np.zeros_like(x)
    z[:, active] = (x[:, active] - mu[active]) / sd[active]
    a = np.hstack([np.ones((n, 1)), z])
    reg = np.full(f + 1, l2)
    reg[0] = 0.0
    reg[1:][~active] = 1.0  # keeps the Hessian invertible; those weights stay 0

    def objective(beta: np.ndarray) -> float:
        return log_loss(y, sigmoid(a @ beta), eps=1e-12) + 0.5 * float(np.sum(reg * beta**2))

    p0 = np.clip(y.mean(), 1e-3, 1 - 1e-3)
    beta = np.zeros(f + 1)
    beta[0] = np.log(p0 / (1 - p0))
    current = objective(beta)
    for _ in range(max_iter):
        p = sigmoid(a @ beta)
        grad = a.T @ (p - y) / n + reg * beta
        hess = (a * (p * (1 - p))[:, None]).T @ a / n + np.diag(reg + 1e-10)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6:
            candidate = beta - t * step
            value = objective(candidate)
            if value <= current:
                break
            t /= 2
        else:
            break
        beta, improvement = candidate, current - value
        current = value
        if improvement < tol:
            break
    w = np.zeros(f)
    w[active] = beta[1:][active] / sd[active]
    b = float(beta[0] - np.sum(w * mu))
    return b, w
