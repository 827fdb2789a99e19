"""Input checks shared by the core and every adapter.

Each check raises a ``ValueError``/``TypeError`` whose message names the problem, so that bad input never
turns into a silent wrong answer. Adapters call the shape and hyper-parameter checks at trace time, before any
host call, so that jit-compiled code fails with the same message as eager code.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

AMBIGUITIES = ("HD", "HR")


def check_loss_shape(shape: Sequence[int]) -> None:
    """Require the shape of a batch of per-sample losses: one axis, at least one entry.

    Checks ``len(shape) == 1 and shape[0] >= 1``.

    Args:
        shape: The shape of the losses (static shapes only; ``None`` entries are unknown sizes and pass).

    Raises:
        ValueError: For a scalar (typically a base loss with ``reduction="mean"``), more than one axis, or an
            empty batch.
    """
    shape = tuple(shape)
    if len(shape) == 0:
        raise ValueError(
            "hrcore needs per-sample losses (a 1-D array, one loss per example), got a scalar. "
            "If it comes from a base loss that averages or sums, construct that loss with "
            'reduction="none" (PyTorch), reduction=None (Keras), or return one loss per example.'
        )
    if len(shape) != 1:
        raise ValueError(
            f"hrcore needs per-sample losses as a 1-D array, got shape {shape}; reduce the non-batch axes "
            "of each example's loss first (e.g. a mean over tokens or pixels), keeping the batch axis."
        )
    if shape[0] == 0:
        raise ValueError("hrcore needs at least one per-sample loss, got an empty batch.")


def as_loss_array(losses: object, mask: object = None) -> np.ndarray:
    """Convert per-sample losses to a finite float64 vector.

    Checks that the input is real-valued, 1-D, non-empty, and finite wherever the mask includes it.

    Args:
        losses: Array-like of per-sample losses, any real float or integer dtype.
        mask: Optional inclusion mask (see ``as_mask``): entries it excludes (padding) may hold anything and
            are returned as 0.

    Returns:
        A new float64 array of shape (N,).

    Raises:
        TypeError: For non-numeric (string, object, complex) input.
        ValueError: For a wrong shape, an empty batch, or NaN/inf entries that the mask includes.
    """
    try:
        array = np.asarray(losses)
    except Exception as error:  # ragged lists and the like
        raise TypeError(
            f"losses must be a numeric 1-D array, got {type(losses).__name__}: {error}"
        ) from error
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(f"losses must be real numbers (a float or integer array), got dtype {array.dtype}.")
    check_loss_shape(array.shape)
    array = array.astype(np.float64, copy=True)
    included = as_mask(mask, array.size)
    bad = ~np.isfinite(array)
    if included is not None:
        array[bad & ~included] = 0.0
        bad &= included
    if bad.any():
        where = np.flatnonzero(bad)
        kinds = sorted({"NaN" if np.isnan(array[i]) else "inf" for i in where[:100]})
        raise ValueError(
            f"losses contain {'/'.join(kinds)} at {where.size} position(s) (first: {where[:5].tolist()}); "
            "a diverged or overflowing loss has no meaningful robust weight. Check the model's outputs, "
            "or pass a mask that excludes those entries."
        )
    return array


def as_mask(mask: object, n: int) -> np.ndarray | None:
    """Convert an optional inclusion mask to a boolean vector of length ``n``.

    Entries with mask False are excluded from the problem and get weight 0.

    Args:
        mask: None, or an array-like of booleans (or 0/1) with shape (n,).
        n: The number of per-sample losses.

    Returns:
        None when every entry is included, else a boolean array of shape (n,).

    Raises:
        ValueError: For a wrong shape, or a mask that excludes every entry.
        TypeError: For a mask that is not boolean or 0/1.
    """
    if mask is None:
        return None
    array = np.asarray(mask)
    if array.shape != (n,):
        raise ValueError(f"mask must have the losses' shape ({n},), got {array.shape}.")
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.number) or not np.isin(array, (0, 1)).all():
            raise TypeError(f"mask must be boolean (True = include), got dtype {array.dtype}.")
        array = array.astype(bool)
    if not array.any():
        raise ValueError("mask excludes every loss: at least one entry must be included.")
    return None if array.all() else array


def check_alpha(alpha: float) -> float:
    """Validate the poisoning fraction α.

    Requires 0 ≤ α < 1.

    Args:
        alpha: Fraction of the training mass that may have been corrupted.

    Returns:
        α as a Python float.

    Raises:
        TypeError: If α is not a real number.
        ValueError: If α is NaN or outside [0, 1).
    """
    value = _real("alpha", alpha)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"alpha (the poisoning fraction) must lie in [0, 1), got {alpha!r}.")
    return value


def check_radius(r: float) -> float:
    """Validate the KL radius r.

    Requires r ≥ 0 and finite.

    Args:
        r: Radius of the Kullback-Leibler ball.

    Returns:
        r as a Python float.

    Raises:
        TypeError: If r is not a real number.
        ValueError: If r is negative, NaN or infinite.
    """
    value = _real("r", r)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"r (the KL radius) must be a finite number >= 0, got {r!r}.")
    return value


def check_nonnegative(name: str, value: float) -> float:
    """Validate a size such as an ε radius, a step size or a mismatch level.

    Requires value ≥ 0 and finite.

    Args:
        name: The parameter's name, used in the message.
        value: The value to check.

    Returns:
        The value as a Python float.

    Raises:
        TypeError: If the value is not a real number.
        ValueError: If it is negative, NaN or infinite.
    """
    number = _real(name, value)
    if not (number >= 0.0 and math.isfinite(number)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return number


def check_count(name: str, value: object, minimum: int = 0) -> int:
    """Validate a count: attack steps, iterations, draws, a batch size.

    Requires an integer (not a bool) with value ≥ minimum.

    Args:
        name: The parameter's name, used in the message.
        value: The count: a Python or numpy integer, or a 0-d integer array.
        minimum: The smallest allowed value.

    Returns:
        The count as an int.

    Raises:
        TypeError: For a bool or a non-integer (floats included).
        ValueError: Below the minimum.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError as error:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}.") from error
    if count < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {count}.")
    return count


def check_ambiguity(ambiguity: str) -> str:
    """Validate the ambiguity set's name.

    Accepts "HD" (poisoning first, then the KL ball; the default) and "HR" (KL ball first), any case.

    Args:
        ambiguity: The name.

    Returns:
        The upper-case name.

    Raises:
        ValueError: For any other name.
    """
    if isinstance(ambiguity, str) and ambiguity.upper() in AMBIGUITIES:
        return ambiguity.upper()
    raise ValueError(f"ambiguity must be one of {AMBIGUITIES}, got {ambiguity!r}.")


def check_upper_bound(upper_bound: float | None, max_loss: float) -> float | None:
    """Validate a known upper bound B of the loss.

    Requires B finite and B ≥ max ℓ.

    Args:
        upper_bound: None (the worst atom sits at the batch maximum) or B.
        max_loss: The largest included loss of the batch.

    Returns:
        B as a Python float, or None.

    Raises:
        ValueError: If B is not finite or lies below the largest loss.
    """
    if upper_bound is None:
        return None
    value = _real("upper_bound", upper_bound)
    if not math.isfinite(value):
        raise ValueError(f"upper_bound must be finite, got {upper_bound!r}.")
    if value < max_loss:
        raise ValueError(
            f"upper_bound={upper_bound!r} lies below the largest loss {max_loss!r}; B must bound every loss "
            "(use a bounded surrogate such as the 0-1 loss with B = 1, or clip the loss at B)."
        )
    return value


def _real(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        if not (
            isinstance(value, np.ndarray) and value.shape == () and np.issubdtype(value.dtype, np.number)
        ):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, got NaN.")
    return number


class Batch(NamedTuple):
    """A validated batch of one HR/HD program.

    Attributes:
        values: All losses (N,), float64 (0 where the mask excludes non-finite padding).
        included: The mask, or None when every entry is in the problem.
        kept: The included losses.
        order: The permutation sorting ``kept`` ascending (kept[order] is ``ordered``).
        ordered: The included losses in ascending order.
        upper_bound: The validated B, or None.
        worst_value: Where the worst atom sits: M = max kept, or B.
        spread: S = worst_value − min kept (0 when every atom coincides).
    """

    values: np.ndarray
    included: np.ndarray | None
    kept: np.ndarray
    order: np.ndarray
    ordered: np.ndarray
    upper_bound: float | None
    worst_value: float
    spread: float


def as_batch(losses: object, mask: object = None, upper_bound: float | None = None) -> Batch:
    """Validate losses, mask and bound together, and locate the worst atom.

    Computes the ascending order of the included losses, M = max ℓ over them (or B), and S = M − min ℓ.

    Args:
        losses: Per-sample losses (see ``as_loss_array``).
        mask: Optional inclusion mask (see ``as_mask``).
        upper_bound: Optional known bound B ≥ max ℓ.

    Returns:
        The batch.

    Raises:
        ValueError: As ``as_loss_array``, ``as_mask`` and ``check_upper_bound`` do.
        TypeError: As ``as_loss_array`` and ``as_mask`` do.
    """
    if mask is None and type(losses) is np.ndarray and losses.dtype == np.float64 and losses.ndim == 1:
        # The common call, a float64 vector: NaN sorts last and ±inf to the ends, so finite extremes of
        # the sorted batch prove it finite without as_loss_array's copy and pass (which raises otherwise).
        if losses.size:
            order = losses.argsort()
            ordered = losses[order]
            top, bottom = ordered.item(-1), ordered.item(0)
            if math.isfinite(top) and math.isfinite(bottom):
                bound = check_upper_bound(upper_bound, top)
                worst = top if bound is None else bound
                return Batch(losses, None, losses, order, ordered, bound, worst, worst - bottom)
    values = as_loss_array(losses, mask)
    included = as_mask(mask, values.size)
    kept = values if included is None else values[included]
    order = kept.argsort()
    ordered = kept[order]
    top, bottom = ordered.item(-1), ordered.item(0)
    bound = check_upper_bound(upper_bound, top)
    worst = top if bound is None else bound
    return Batch(values, included, kept, order, ordered, bound, worst, worst - bottom)
