"""Input attacks: closed-form first steps on a linear model, feasibility, model state, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
from frameworks import require

torch = require("torch")

from torch import nn  # noqa: E402

from hrcore.adapters.torch import attack_mode, ffgsm, fgsm, fgv, pgd  # noqa: E402
from hrcore.geometry import per_example_norm, to_pixels  # noqa: E402


def linear_model(d: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, classes)).double()


def closed_form_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """∇ₓ CE(Wx + b, y) = Wᵀ(softmax(Wx + b) − e_y), per example, from the weights in numpy."""
    weight = model[1].weight.detach().numpy()
    bias = model[1].bias.detach().numpy()
    flat = x.reshape(x.shape[0], -1).numpy()
    logits = flat @ weight.T + bias
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[np.arange(len(y)), y.numpy()] -= 1.0
    return (probabilities @ weight).reshape(x.shape)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(5)
    x = torch.rand(8, 2, 3, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=generator)
    return x, y


def test_fgsm_and_fgv_match_the_closed_form(batch):
    x, y = batch
    model = linear_model()
    g = closed_form_gradient(model, x, y)
    np.testing.assert_allclose(fgsm(model, x, y, 0.3).numpy(), x.numpy() + 0.3 * np.sign(g), atol=1e-12)
    largest = np.abs(g.reshape(8, -1)).max(axis=1).reshape(8, 1, 1)
    np.testing.assert_allclose(fgv(model, x, y, 0.6).numpy(), x.numpy() + 0.6 * g / largest, atol=1e-12)
    clipped = fgsm(model, x, y, 0.3, bounds=(0.0, 1.0)).numpy()
    np.testing.assert_allclose(clipped, np.clip(x.numpy() + 0.3 * np.sign(g), 0.0, 1.0), atol=1e-12)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_first_pgd_step_matches_the_closed_form(batch, norm):
    x, y = batch
    model = linear_model()
    g = closed_form_gradient(model, x, y).reshape(8, -1)
    step = 0.1
    if norm == "linf":
        direction = np.sign(g)
    elif norm == "l2":
        direction = g / np.linalg.norm(g, axis=1, keepdims=True)
    else:
        direction = np.zeros_like(g)
        top = np.abs(g).argmax(axis=1)
        direction[np.arange(8), top] = np.sign(g[np.arange(8), top])
    adversarial = pgd(model, x, y, eps=1.0, step_size=step, steps=1, norm=norm, random_start=False)
    np.testing.assert_allclose(
        adversarial.reshape(8, -1).numpy(), x.reshape(8, -1).numpy() + step * direction
    )


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_iterates_stay_in_the_ball_and_bounds(norm):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x, y = torch.rand(10, 1, 6, 6), torch.randint(0, 3, (10,))
    eps = {"linf": 0.1, "l2": 0.5, "l1": 2.0}[norm]
    adversarial = pgd(model, x, y, eps, step_size=eps, steps=5, norm=norm, bounds=(0.0, 1.0), key=3)
    distance = per_example_norm(adversarial - x, norm)
    assert torch.all(distance <= eps * (1 + 1e-5))
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    assert torch.all(distance > 0)
    start_only = pgd(model, x, y, eps, step_size=eps, steps=0, norm=norm, key=3)
    assert torch.all(per_example_norm(start_only - x, norm) <= eps * (1 + 1e-5))


def test_any_input_shape_with_a_batch_axis():
    torch.manual_seed(0)
    sequence_model = nn.Sequential(nn.Linear(4, 2), nn.Flatten(), nn.Linear(10, 3))
    x, y = torch.randn(6, 5, 4), torch.randint(0, 3, (6,))
    adversarial = pgd(sequence_model, x, y, 0.2, 0.1, steps=2, norm="l2", key=0)
    assert adversarial.shape == x.shape
    assert torch.all(per_example_norm(adversarial - x, "l2") <= 0.2 + 1e-6)


def test_normalization_puts_eps_and_bounds_in_pixel_space():
    torch.manual_seed(1)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    pixels = torch.rand(5, 3, 4, 4)
    stats = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    normalized = (pixels - stats[0]) / stats[1]
    y = torch.randint(0, 3, (5,))
    adversarial = pgd(
        model, normalized, y, 8 / 255, 2 / 255, steps=4, bounds=(0.0, 1.0), normalization=(mean, std)
    )
    back = to_pixels(adversarial, (mean, std))
    assert torch.all((back - pixels).abs() <= 8 / 255 + 1e-5)
    assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6
    # In normalised units the change is ε/std, more than ε for std < 1: the ball was not applied there.
    assert (adversarial - normalized).abs().max() > 8 / 255 + 1e-3


def bn_model() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 16, 3)
    )


@pytest.mark.parametrize("train_mode", [False, True])
def test_flags_buffers_and_parameter_grads_are_untouched(train_mode):
    model = bn_model()
    model.train()
    model[1].eval()  # a frozen BatchNorm under a training model: must stay frozen
    flags = [m.training for m in model.modules()]
    buffers = [b.clone() for b in model.buffers()]
    model[5].weight.grad = torch.full_like(model[5].weight, 3.0)
    x, y = torch.rand(4, 1, 6, 6), torch.randint(0, 3, (4,))
    for attack in (
        lambda: pgd(model, x, y, 0.1, 0.05, steps=3, key=0, train_mode=train_mode),
        lambda: fgsm(model, x, y, 0.1, train_mode=train_mode),
        lambda: fgv(model, x, y, 0.1, train_mode=train_mode),
        lambda: ffgsm(model, x, y, 0.1, 0.12, key=1, train_mode=train_mode),
    ):
        attack()
        assert [m.training for m in model.modules()] == flags
        for before, after in zip(buffers, model.buffers(), strict=True):
            assert torch.equal(before, after)
        assert model[0].weight.grad is None
        assert torch.equal(model[5].weight.grad, torch.full_like(model[5].weight, 3.0))


def test_attack_mode_restores_flags_after_an_error():
    model = bn_model()
    model.train()
    with pytest.raises(RuntimeError, match="boom"), attack_mode(model):
        assert not model.training
        raise RuntimeError("boom")
    assert all(m.training for m in model.modules())


def test_seeds_make_random_starts_reproducible():
    model = linear_model()
    x, y = torch.rand(4, 6, dtype=torch.float64), torch.randint(0, 3, (4,))
    first = pgd(model, x, y, 0.3, 0.1, steps=1, key=11)
    assert torch.equal(first, pgd(model, x, y, 0.3, 0.1, steps=1, key=11))
    assert not torch.equal(first, pgd(model, x, y, 0.3, 0.1, steps=1, key=12))
    generator = torch.Generator().manual_seed(11)
    assert torch.equal(first, pgd(model, x, y, 0.3, 0.1, steps=1, key=generator))


def test_ffgsm_is_one_projected_step_from_a_random_start():
    model = linear_model()
    x, y = torch.rand(64, 6, dtype=torch.float64), torch.randint(0, 3, (64,))
    adversarial = ffgsm(model, x, y, eps=0.1, step_size=0.125, key=0)
    assert torch.all((adversarial - x).abs() <= 0.1 + 1e-12)
    assert not torch.equal(adversarial, fgsm(model, x, y, 0.1))


def test_custom_loss_is_ascended():
    model = linear_model()
    x, y = torch.rand(5, 6, dtype=torch.float64), torch.randint(0, 3, (5,))

    def margin(outputs, targets):
        return -outputs.gather(1, targets[:, None]).squeeze(1)

    adversarial = pgd(model, x, y, 0.2, 0.05, steps=4, loss_fn=margin, random_start=False)
    assert torch.all(margin(model(adversarial), y) > margin(model(x), y))


def test_bad_arguments_raise():
    model = linear_model()
    x, y = torch.rand(4, 6, dtype=torch.float64), torch.randint(0, 3, (4,))
    with pytest.raises(TypeError, match="floating-point"):
        pgd(model, torch.ones(4, 6, dtype=torch.long), y, 0.1, 0.1)
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x, y, 0.1, 0.1, steps=-1)
    with pytest.raises(TypeError, match="steps"):
        pgd(model, x, y, 0.1, 0.1, steps=2.5)
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, 0.1, 0.1, norm="l7")
    with pytest.raises(TypeError, match="key"):
        pgd(model, x, y, 0.1, 0.1, key="seed")
    with pytest.raises(ValueError, match="batch axis"):
        fgsm(model, torch.tensor(1.0), y, 0.1)
    assert torch.equal(pgd(model, x, y, 0.0, 0.1), x)
