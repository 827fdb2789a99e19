"""HRLoss, HRCriterion and hr_weights against the numpy core: value, gradient = weights, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
from frameworks import require

torch = require("torch")

from torch import nn  # noqa: E402

import hrcore  # noqa: E402
from hrcore.adapters.torch import HRCriterion, HRLoss, hr_loss, hr_weights, pgd  # noqa: E402


def identity_loss(outputs, targets):
    return outputs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ambiguity", ["HD", "HR"])
def test_value_and_gradient_equal_the_core(dtype, ambiguity):
    generator = torch.Generator().manual_seed(1)
    losses = torch.rand(64, generator=generator, dtype=torch.float64).to(dtype).requires_grad_(True)
    criterion = HRLoss(identity_loss, alpha=0.1, r=0.3, ambiguity=ambiguity)
    value = criterion(losses, None)
    value.backward()
    expected = hrcore.solve(losses.detach().double().numpy(), alpha=0.1, r=0.3, ambiguity=ambiguity)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-6
    assert value.dtype == dtype
    assert value.item() == pytest.approx(expected.value, rel=tolerance)
    np.testing.assert_allclose(losses.grad.double().numpy(), expected.weights, rtol=tolerance, atol=tolerance)
    assert criterion.last_solution.value == pytest.approx(expected.value, rel=1e-12)
    assert criterion.last_solution.effective_sample_size == pytest.approx(expected.effective_sample_size)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_losses_give_a_finite_loss_of_their_dtype(dtype):
    losses = torch.linspace(0.1, 3.0, 32, dtype=dtype).requires_grad_(True)
    value = HRLoss(identity_loss)(losses, None)
    value.backward()
    expected = hrcore.solve(losses.detach().double().numpy())
    assert value.dtype == dtype
    assert value.float().item() == pytest.approx(expected.value, rel=1e-2)
    np.testing.assert_allclose(losses.grad.double().numpy(), expected.weights, atol=2e-3)


def test_cross_entropy_swap_matches_weights_times_per_sample_losses():
    torch.manual_seed(0)
    logits = torch.randn(20, 5, requires_grad=True)
    targets = torch.randint(0, 5, (20,))
    value = HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha=0.05, r=0.1)(logits, targets)
    per_sample = nn.functional.cross_entropy(logits, targets, reduction="none")
    weights = hr_weights(per_sample, alpha=0.05, r=0.1)
    assert value.item() == pytest.approx((weights * per_sample).sum().item(), rel=1e-6)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_reducing_base_loss_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match='reduction="none"'):
        HRLoss(nn.CrossEntropyLoss(reduction="mean"))
    with pytest.raises(ValueError, match="scalar"):
        HRLoss(lambda o, t: o.mean())(torch.rand(4), None)
    with pytest.raises(TypeError, match="callable"):
        HRLoss("cross-entropy")


def test_bad_losses_raise_clear_errors():
    criterion = HRLoss(identity_loss)
    with pytest.raises(ValueError, match="1-D"):
        criterion(torch.rand(3, 2), None)
    with pytest.raises(ValueError, match="empty"):
        criterion(torch.rand(0), None)
    with pytest.raises(TypeError, match="floating-point"):
        criterion(torch.arange(3), None)
    with pytest.raises(ValueError, match="NaN"):
        criterion(torch.tensor([1.0, float("nan")]), None)


def test_ignored_rows_get_zero_weight_and_do_not_consume_alpha():
    torch.manual_seed(0)
    logits = torch.randn(12, 4, requires_grad=True)
    targets = torch.randint(0, 4, (12,))
    targets[[2, 7]] = -100
    criterion = HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha=0.2, r=0.1)
    criterion(logits, targets).backward()
    kept = targets != -100
    per_sample = nn.functional.cross_entropy(logits.detach(), targets, reduction="none")
    alone = hrcore.solve(per_sample[kept].numpy(), alpha=0.2, r=0.1)
    weights = criterion.last_solution.weights
    assert np.all(weights[~kept.numpy()] == 0.0)
    np.testing.assert_allclose(weights[kept.numpy()], alone.weights, atol=1e-10)
    assert criterion.last_solution.value == pytest.approx(alone.value, rel=1e-10)


def test_explicit_mask_equals_dropping_the_rows():
    losses = torch.tensor([0.5, 2.0, 0.1, 3.0, 1.0], requires_grad=True)
    mask = torch.tensor([True, False, True, True, True])
    value = hr_loss(losses, alpha=0.25, r=0.2, mask=mask)
    value.backward()
    alone = hrcore.solve(losses.detach()[mask].numpy(), alpha=0.25, r=0.2)
    assert value.item() == pytest.approx(alone.value, rel=1e-6)
    assert losses.grad[1].item() == 0.0
    with pytest.raises(ValueError, match="shape"):
        hr_loss(losses, mask=torch.tensor([True, False]))
    with pytest.raises(TypeError, match="boolean"):
        hr_loss(losses, mask=torch.tensor([0.5, 1.0, 1.0, 1.0, 1.0]))


def test_hyper_parameters_are_schedulable_and_validated():
    losses = torch.rand(50, dtype=torch.float64)
    criterion = HRLoss(identity_loss, alpha=0.0, r=0.0)
    assert criterion(losses, None).item() == pytest.approx(losses.mean().item(), rel=1e-12)
    criterion.alpha, criterion.r = 0.2, 0.5
    assert criterion(losses, None).item() == pytest.approx(hrcore.solve(losses.numpy(), 0.2, 0.5).value)
    with pytest.raises(ValueError, match="alpha"):
        criterion.alpha = 1.5
    with pytest.raises(ValueError, match="r "):
        criterion.r = -0.1
    with pytest.raises(ValueError, match="ambiguity"):
        criterion.ambiguity = "KL"
    assert criterion.alpha == 0.2


def test_upper_bound_adds_the_constant_worst_atom():
    losses = torch.rand(30, dtype=torch.float64, requires_grad=True)
    value = hr_loss(losses, alpha=0.1, r=0.2, upper_bound=2.0)
    value.backward()
    expected = hrcore.solve(losses.detach().numpy(), alpha=0.1, r=0.2, upper_bound=2.0)
    assert value.item() == pytest.approx(expected.value, rel=1e-12)
    np.testing.assert_allclose(losses.grad.numpy(), expected.weights, atol=1e-12)
    with pytest.raises(ValueError, match="upper_bound"):
        hr_loss(losses, upper_bound=0.5)


def tiny_classifier():
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))


def test_criterion_without_eps_is_the_plain_hr_loss():
    model = tiny_classifier()
    x, y = torch.randn(16, 3, 2, 2), torch.randint(0, 3, (16,))
    base = nn.CrossEntropyLoss(reduction="none")
    criterion = HRCriterion(model, base, alpha=0.1, r=0.2, eps=0.0)
    assert criterion(x, y).item() == pytest.approx(HRLoss(base, 0.1, 0.2)(model(x), y).item(), rel=1e-6)
    assert not any(name == "model" for name, _ in criterion.named_children())
    assert list(criterion.parameters()) == []


def test_criterion_with_eps_is_hr_on_the_adversarial_losses():
    model = tiny_classifier()
    x, y = torch.randn(16, 3, 2, 2), torch.randint(0, 3, (16,))
    base = nn.CrossEntropyLoss(reduction="none")
    criterion = HRCriterion(
        model, base, 0.1, 0.2, eps=0.5, norm="linf", attack_steps=3, step_size=0.2, generator=7
    )
    adversarial = pgd(model, x, y, 0.5, 0.2, steps=3, norm="linf", loss_fn=base, key=7)
    expected = HRLoss(base, 0.1, 0.2)(model(adversarial), y)
    value = criterion(x, y)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert value.item() > HRLoss(base, 0.1, 0.2)(model(x), y).item()
    with pytest.raises(ValueError, match="attack"):
        HRCriterion(model, base, 0.1, 0.2, 0.5, attack="cw")
    with pytest.raises(ValueError, match="norm"):
        HRCriterion(model, base, 0.1, 0.2, 0.5, norm="l3")
