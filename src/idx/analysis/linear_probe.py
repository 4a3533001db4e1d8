"""The linear probe (the CLIP paper's measure of representation quality): logistic regression on
the embeddings, scored by stratified k-fold cross-validation.

Every image is predicted once, by the model trained on the other folds; the accuracy is the share
of those out-of-fold predictions that are one of the image's labels (the kNN rule for multi-label
images; each image is trained on its primary label), with a Wilson 95 % interval over the images
and the spread of the per-fold accuracies. Features are standardised inside each fold (a
StandardScaler fitted on the training part only), so no information leaks from the held-out fold.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

#: Folds of the cross-validation; lowered when the largest class has fewer images.
DEFAULT_FOLDS = 5
#: Inverse L2 regularisation strength of the logistic regression (on standardised features).
DEFAULT_C = 1.0
MAX_ITER = 1000


def wilson_interval(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion hits / n (95 % by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


class LinearProbe:
    """Cross-validated logistic regression; scikit-learn style (`fit` returns self).

    >>> probe = LinearProbe(n_splits=5).fit(x, primary, y)
    >>> low, high = probe.ci95_
    >>> bool(0 <= low <= probe.accuracy_ <= high <= 1), len(probe.fold_accuracies_)
    (True, 5)
    """

    def __init__(
        self,
        n_splits: int = DEFAULT_FOLDS,
        C: float = DEFAULT_C,
        max_iter: int = MAX_ITER,
        random_state: int | None = 0,
    ):
        self.n_splits = n_splits
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def folds_for(self, primary: np.ndarray) -> int:
        """The folds used: n_splits, at most the size of the largest class, at least 2."""
        largest = int(np.bincount(primary).max()) if len(primary) else 0
        return max(2, min(self.n_splits, largest))

    def fit(self, x: np.ndarray, primary: np.ndarray, y: np.ndarray | None = None) -> LinearProbe:
        """x [n, d] features, primary [n] the label each image is trained on, y [n, C] bool all
        its labels (a prediction of any counts as correct; default: the primary label only)."""
        x = np.asarray(x, dtype=np.float64)
        primary = np.asarray(primary, dtype=np.int64)
        if y is None:
            y = np.zeros((len(primary), int(primary.max()) + 1), dtype=bool)
            y[np.arange(len(primary)), primary] = True
        if len(np.unique(primary)) < 2 or len(x) < 4:
            raise ValueError("a linear probe needs at least 2 classes and 4 labelled images")
        self.folds_ = self.folds_for(primary)
        splitter = StratifiedKFold(self.folds_, shuffle=True, random_state=self.random_state)
        predicted = np.full(len(x), -1, dtype=np.int64)
        fold_of = np.full(len(x), -1, dtype=np.int64)
        with warnings.catch_warnings():
            # classes smaller than the number of folds, and slow convergence on tiny sets
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            for fold, (train, test) in enumerate(splitter.split(x, primary)):
                fold_of[test] = fold
                if len(np.unique(primary[train])) < 2:  # one class to learn: it is the answer
                    predicted[test] = primary[train][0]
                    continue
                model = make_pipeline(
                    StandardScaler(),
                    LogisticRegression(C=self.C, max_iter=self.max_iter),
                )
                model.fit(x[train], primary[train])
                predicted[test] = model.predict(x[test])
        self.predicted_ = predicted
        self.hits_ = y[np.arange(len(x)), predicted]
        self.accuracy_ = float(self.hits_.mean())
        self.ci95_ = wilson_interval(int(self.hits_.sum()), len(x))
        self.fold_accuracies_ = [float(self.hits_[fold_of == f].mean()) for f in range(self.folds_)]
        self.n_images_ = len(x)
        return self

    def summary(self) -> dict[str, object]:
        """The fitted probe as JSON-able numbers."""
        return {
            "accuracy": self.accuracy_,
            "ci95": list(self.ci95_),
            "fold_accuracies": self.fold_accuracies_,
            "fold_sd": float(np.std(self.fold_accuracies_, ddof=1)),
            "folds": self.folds_,
            "n_images": self.n_images_,
            "C": self.C,
        }
