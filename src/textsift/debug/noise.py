"""Label noise by confident learning (Northcutt, Jiang and Chuang, JAIR 2021), written for textsift.

1. Out-of-sample probabilities: k-fold cross-validation (stratified) of a cheap model, TF-IDF of word 1-2 grams and
   a logistic regression fitted by SGD; every example is scored by a model that never saw it. (Measured on trec and r8
   with 5% flipped labels: it ranks and flags as well as the bag or linear model, at a fraction of their time; see
   BENCHMARKS.md.)
2. Per-class thresholds: ``t_j`` is the mean probability of class j over the examples labelled j (none for a label
   with fewer than :data:`MIN_CLASS_EXAMPLES` examples: it is never suggested).
3. The confident joint ``C[i, j]``: examples labelled i whose probability of j reaches ``t_j`` (the most probable such
   j when several do). Calibrated so that row i sums to the count of label i, and normalised, it estimates the joint
   distribution of given and true labels; an off-diagonal entry divided by its row's count is the estimated noise rate
   p(true j | given i).
4. Issues: for each pair (i, j), the ``n * Q[i, j]`` examples labelled i with the largest margin ``p_j - p_i``
   (pruning by noise rate), kept only if they also sit off the diagonal of the confident joint and the model's most
   probable label is not the given one (cleanlab's "both"). The ranking score is ``1 - p(given label)``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: labels with fewer training examples than this are never suggested as the true label (too rare to judge)
MIN_CLASS_EXAMPLES = 5


@dataclass
class LabelNoise:
    """What confident learning found. Arrays are per example (``n``) or per pair of labels (``m x m``, given x true)."""

    label_names: list[str]
    given: np.ndarray  # n: index of the given label
    probabilities: np.ndarray  # n x m: out-of-sample probabilities
    thresholds: np.ndarray  # m: per-class thresholds
    confident_joint: np.ndarray  # m x m counts: given i, confidently j
    joint: np.ndarray  # m x m: estimated p(given i, true j)
    issues: np.ndarray  # n: bool, suspected label errors
    folds: int

    @property
    def score(self) -> np.ndarray:
        """How suspect each example's label is: 1 - the out-of-sample probability of its given label."""
        return 1.0 - self.probabilities[np.arange(len(self.given)), self.given]

    @property
    def suggested(self) -> np.ndarray:
        """The most probable label other than the given one."""
        masked = self.probabilities.copy()
        masked[np.arange(len(self.given)), self.given] = -1.0
        return masked.argmax(axis=1)

    @property
    def noise_rates(self) -> np.ndarray:
        """m x m: estimated p(true j | given i); the diagonal is the share of each label that is right."""
        rows = self.joint.sum(axis=1, keepdims=True)
        return np.divide(self.joint, rows, out=np.zeros_like(self.joint), where=rows > 0)

    def ranked_issues(self) -> np.ndarray:
        """Indices of the suspected examples, most suspect first."""
        idx = np.flatnonzero(self.issues)
        return idx[np.argsort(-self.score[idx], kind="stable")]


def _texts_features(texts: Sequence[str]):  # noqa: ANN202  (a scipy sparse matrix)
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32).fit_transform(texts)


def out_of_sample_probabilities(texts: Sequence[str], given: np.ndarray, n_labels: int, *, folds: int = 10, seed: int = 0,
                                alpha: float = 3e-5, epochs: int = 15) -> np.ndarray:
    """``n x n_labels`` probabilities, each row from a model trained on the other folds (stratified k-fold)."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import StratifiedKFold

    features = _texts_features(texts)
    probs = np.zeros((len(given), n_labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has only 1 member": such a class is scored anyway
        for train_idx, held_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(given)), given):
            if len(np.unique(given[train_idx])) < 2:
                probs[np.ix_(held_idx, given[train_idx][:1])] = 1.0
                continue
            model = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None, random_state=seed)
            model.fit(features[train_idx], given[train_idx])
            probs[np.ix_(held_idx, model.classes_)] = model.predict_proba(features[held_idx])
    return probs


def confident_learning(probabilities: np.ndarray, given: np.ndarray, label_names: Sequence[str], folds: int = 0) -> LabelNoise:
    """Per-class thresholds, the confident joint, the estimated joint and the suspected issues (see the module doc)."""
    n, m = probabilities.shape
    counts = np.bincount(given, minlength=m)
    rows = np.arange(n)
    # a label with very few examples gets no threshold (none is confidently it): the cross-validated models rarely
    # saw it, so its examples' own probabilities of it are near 0, and a threshold that low took in a share of every
    # class (one example labelled RARE among 3,000: 52% estimated noise, 27% of the labels flagged, against 13.5%
    # and 6% without that row)
    thresholds = np.array([probabilities[given == j, j].mean() if counts[j] >= MIN_CLASS_EXAMPLES else np.inf for j in range(m)])
    above = probabilities >= thresholds[None, :]
    confident = above.any(axis=1)
    confident_label = np.where(above, probabilities, -1.0).argmax(axis=1)
    joint_counts = np.zeros((m, m), dtype=np.int64)
    np.add.at(joint_counts, (given[confident], confident_label[confident]), 1)
    row_sums = joint_counts.sum(axis=1, keepdims=True)
    calibrated = np.divide(joint_counts * counts[:, None], row_sums, out=np.zeros((m, m)), where=row_sums > 0)
    total = calibrated.sum()
    joint = calibrated / total if total > 0 else calibrated
    pruned = np.zeros(n, dtype=bool)
    for i in range(m):
        members = np.flatnonzero(given == i)
        for j in range(m):
            k = int(round(joint[i, j] * n)) if i != j else 0
            if k > 0 and len(members):
                margin = probabilities[members, j] - probabilities[members, i]
                pruned[members[np.argsort(-margin, kind="stable")[:k]]] = True
    off_diagonal = confident & (confident_label != given)
    issues = pruned & off_diagonal & (probabilities.argmax(axis=1) != given)
    issues &= probabilities[rows, given] < 1.0
    return LabelNoise(list(label_names), given, probabilities, thresholds, joint_counts, joint, issues, folds)


def find_label_noise(texts: Sequence[str], given: np.ndarray, label_names: Sequence[str], *, folds: int = 10, seed: int = 0) -> LabelNoise:
    """Out-of-sample probabilities by ``folds``-fold cross-validation, then :func:`confident_learning`."""
    folds = max(2, min(folds, len(given)))
    probs = out_of_sample_probabilities(texts, given, len(label_names), folds=folds, seed=seed)
    return confident_learning(probs, given, label_names, folds)
