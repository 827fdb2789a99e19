"""Framework-free summaries of robustness evaluations: adversarial accuracy and mismatch curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np


class AdversarialAccuracy(NamedTuple):
    """Accuracy on clean inputs and under attack.

    Attributes:
        clean: Fraction of clean inputs classified correctly.
        conditional: Fraction of adversarial inputs classified correctly, counted only over the originals the
            model classified correctly (the course-exercise definition); NaN when none was correct.
        robust: Unconditional robust accuracy: fraction of examples whose adversarial input is classified
            correctly (an attack is typically run from every original).
    """

    clean: float
    conditional: float
    robust: float


def adversarial_accuracy_from_predictions(
    labels: Sequence[int] | np.ndarray,
    clean_pred: Sequence[int] | np.ndarray,
    adv_pred: Sequence[int] | np.ndarray,
) -> AdversarialAccuracy:
    """Clean, conditional and unconditional adversarial accuracy from predicted classes.

    Computes mean[ŷ = y], mean[ŷ_adv = y | ŷ = y] and mean[ŷ_adv = y].

    Args:
        labels: True classes (B,).
        clean_pred: Predicted classes on the clean inputs (B,).
        adv_pred: Predicted classes on the adversarial inputs (B,).

    Returns:
        The three accuracies.

    Raises:
        ValueError: For mismatched or empty inputs.
    """
    y, clean, adv = (np.asarray(a).reshape(-1) for a in (labels, clean_pred, adv_pred))
    if not (y.shape == clean.shape == adv.shape):
        raise ValueError(f"labels and predictions differ in length: {y.shape}, {clean.shape}, {adv.shape}.")
    if y.size == 0:
        raise ValueError("adversarial accuracy needs at least one example, got an empty batch.")
    correct = clean == y
    still = adv == y
    conditional = float(np.mean(still[correct])) if correct.any() else float("nan")
    return AdversarialAccuracy(float(np.mean(correct)), conditional, float(np.mean(still)))


class MismatchCurve(NamedTuple):
    """A robustness curve: mean and standard deviation of a metric over random draws, per perturbation level.

    Attributes:
        levels: The perturbation levels (ζ for parameter mismatch, ε for input noise).
        mean: Mean of the metric over draws at each level.
        std: Standard deviation over draws at each level.
    """

    levels: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def summarize_draws(
    levels: Sequence[float] | np.ndarray, values: Sequence[Sequence[float]] | np.ndarray
) -> MismatchCurve:
    """Mean and standard deviation over draws at each level.

    Computes mean_k v[l, k] and std_k v[l, k] (population std) for each level l.

    Args:
        levels: The levels (L,).
        values: The metric, shape (L, draws).

    Returns:
        The curve.

    Raises:
        ValueError: If values does not have one row per level, or has no draws.
    """
    grid = np.asarray(levels, dtype=np.float64).reshape(-1)
    table = np.asarray(values, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] != grid.size or table.shape[1] == 0:
        raise ValueError(f"values must have shape (levels={grid.size}, draws>0), got {table.shape}.")
    return MismatchCurve(grid, table.mean(axis=1), table.std(axis=1))


def robustness_table(
    curves: Mapping[str, MismatchCurve], ratio: tuple[str, str] | None = None, level_name: str = "ζ"
) -> str:
    """A text table of several robustness curves on the same levels, with an optional ratio column.

    Prints mean ± std per level for each curve and, for ratio = (a, b), the quotient mean_a/mean_b.

    Args:
        curves: Label -> curve; all on the same levels.
        ratio: Optional (numerator, denominator) labels for a last column.
        level_name: Heading of the level column.

    Returns:
        The table, one line per level after a header line.

    Raises:
        ValueError: If the curves do not share their levels.
    """
    labels = list(curves)
    levels = curves[labels[0]].levels
    if any(not np.array_equal(curve.levels, levels) for curve in curves.values()):
        raise ValueError("robustness_table needs curves evaluated on the same levels.")
    header = f"{level_name:>5} | " + " | ".join(f"{label:>21}" for label in labels)
    if ratio is not None:
        header += f" | {ratio[0]}/{ratio[1]}"
    lines = [header]
    for i, level in enumerate(levels):
        cells = " | ".join(f"{curves[label].mean[i]:9.4g} ± {curves[label].std[i]:9.3g}" for label in labels)
        line = f"{level:5.2f} | {cells}"
        if ratio is not None:
            line += f" | {curves[ratio[0]].mean[i] / curves[ratio[1]].mean[i]:6.2f}"
        lines.append(line)
    return "\n".join(lines)
