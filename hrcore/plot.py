"""Figures of robustness evaluations: robustness curves, accuracy over epochs, weight histograms.

matplotlib (the ``plot`` extra) with the Agg backend, so figures render on machines without a display; each
function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hrcore.evaluation import MismatchCurve


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("hrcore.plot needs matplotlib: pip install 'hrcore[plot]'") from error
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    _pyplot().close(figure)
    return target


def plot_robustness_curves(
    curves: Mapping[str, MismatchCurve],
    path: str | Path,
    xlabel: str = "mismatch level ζ",
    ylabel: str = "loss",
    title: str | None = None,
    log_y: bool = False,
) -> Path:
    """Mean ± one standard deviation of a metric against the perturbation level, one band per model.

    Draws mean_l and the band [mean_l − std_l, mean_l + std_l] over levels l.

    Args:
        curves: Label -> curve (levels, mean, std).
        path: PNG file to write.
        xlabel: Label of the level axis.
        ylabel: Label of the metric axis.
        title: Optional title.
        log_y: Logarithmic metric axis (for losses spanning decades).

    Returns:
        The written path.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label, curve in curves.items():
        (line,) = axis.plot(curve.levels, curve.mean, marker="o", label=label)
        lower = curve.mean - curve.std
        if log_y:
            lower = np.maximum(lower, np.min(curve.mean[curve.mean > 0], initial=1e-12) * 1e-2)
        axis.fill_between(curve.levels, lower, curve.mean + curve.std, color=line.get_color(), alpha=0.2)
    if log_y:
        axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def plot_accuracy_over_epochs(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    title: str | None = None,
    ylabel: str = "accuracy",
) -> Path:
    """Metrics per epoch for several training runs: one colour per run, one line style per metric.

    Draws history[run][metric][epoch] against epoch = 1..E.

    Args:
        histories: Run label -> metric name -> values per epoch, e.g.
            {"ERM": {"clean": [...], "adversarial": [...]}}.
        path: PNG file to write.
        title: Optional title.
        ylabel: Label of the metric axis.

    Returns:
        The written path.
    """
    plt = _pyplot()
    styles = ["-", "--", ":", "-."]
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    metrics = list(dict.fromkeys(name for history in histories.values() for name in history))
    for index, (run, history) in enumerate(histories.items()):
        colour = f"C{index % 10}"
        for name, values in history.items():
            epochs = np.arange(1, len(values) + 1)
            style = styles[metrics.index(name) % len(styles)]
            axis.plot(epochs, values, style, color=colour, label=f"{run} – {name}")
    axis.set_xlabel("epoch")
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _save(figure, path)


def plot_weight_histogram(
    weights: Sequence[float] | np.ndarray,
    path: str | Path,
    title: str | None = None,
    bins: int = 40,
) -> Path:
    """Histogram of HR importance weights relative to uniform.

    Draws the distribution of N·w_i (1 = the ERM weight; 0 = trimmed as possible poison).

    Args:
        weights: Folded weights (N,).
        path: PNG file to write.
        title: Optional title.
        bins: Number of bins.

    Returns:
        The written path.
    """
    plt = _pyplot()
    values = np.asarray(weights, dtype=np.float64).reshape(-1)
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    axis.hist(values * values.size, bins=bins, color="C0", alpha=0.8)
    axis.axvline(1.0, color="k", linestyle="--", label="uniform (ERM)")
    axis.set_xlabel("N · weight")
    axis.set_ylabel("samples")
    if title:
        axis.set_title(title)
    axis.legend()
    return _save(figure, path)
