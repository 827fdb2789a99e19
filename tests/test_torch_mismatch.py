"""Parameter-mismatch loss: the stated gradient semantics, the box, β = 0, buffers, the mismatch curve."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from frameworks import require

torch = require("torch")

from torch import nn  # noqa: E402
from torch.func import functional_call  # noqa: E402

from hrcore.adapters.torch import mismatch_adversarial_loss, mismatch_curve, pga_attack  # noqa: E402


def mse(a, b):
    return ((a - b) ** 2).mean()


def two_layer() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(7, 3, generator=generator, dtype=torch.float64), torch.randn(
        7, 2, generator=generator, dtype=torch.float64
    )


def test_gradient_matches_finite_differences_of_the_stated_semantics(data):
    x, y = data
    model = two_layer()
    sigma, beta, level, steps = 0.1, 0.7, 0.2, 4
    loss = mismatch_adversarial_loss(
        model, x, y, mse, mse, torch.Generator().manual_seed(3), sigma, 1e-2, level, beta, steps
    )
    names = [n for n, _ in model.named_parameters()]
    autograd = torch.autograd.grad(loss, list(model.parameters()))

    # Replay the draws: forward noise first, then the attack's start (continuing the same stream).
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(3)
    noise = {
        n: theta[n].abs() * sigma * torch.randn(p.shape, generator=generator, dtype=p.dtype)
        for n, p in theta.items()
    }
    nominal = functional_call(model, theta, (x,))
    star = pga_attack(model, x, nominal, mse, generator, steps, level, 1e-2)
    u = {n: ((star[n] - theta[n]) / theta[n].abs()).detach() for n in names}

    def stated(params):
        task = mse(functional_call(model, {n: params[n] + noise[n] for n in names}, (x,)), y)
        attacked = functional_call(model, {n: params[n] + params[n].abs() * u[n] for n in names}, (x,))
        return task + beta * mse(attacked, functional_call(model, params, (x,)))

    assert stated(theta).item() == pytest.approx(loss.item(), rel=1e-12)
    h = 1e-6
    for name, grad in zip(names, autograd, strict=True):
        flat = theta[name].reshape(-1)
        numeric = np.empty(flat.numel())
        for i in range(flat.numel()):
            plus, minus = dict(theta), dict(theta)
            step = torch.zeros_like(flat)
            step[i] = h
            plus[name] = (flat + step).reshape(theta[name].shape)
            minus[name] = (flat - step).reshape(theta[name].shape)
            numeric[i] = (stated(plus).item() - stated(minus).item()) / (2 * h)
        np.testing.assert_allclose(grad.reshape(-1).numpy(), numeric, rtol=1e-5, atol=1e-8)


def test_first_attack_step_on_a_linear_model_is_hand_derived(data):
    x, _ = data
    torch.manual_seed(2)
    model = nn.Linear(3, 2, bias=False).double()
    w = model.weight.detach().numpy()
    level, init = 0.1, 0.01
    generator = torch.Generator().manual_seed(9)
    star = pga_attack(
        model, x, model(x).detach(), mse, generator, attack_steps=1, mismatch_level=level, initial_std=init
    )
    u0 = np.clip(
        init * torch.randn(w.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64).numpy(),
        -level,
        level,
    )
    # L(u) = mean((X (|W|⊙u)ᵀ)²) over B×out entries: ∇ᵤL = |W| ⊙ (2/(B·out)) Dᵀ X with D = X (|W|⊙u0)ᵀ.
    xn = x.numpy()
    d = xn @ (np.abs(w) * u0).T
    grad = np.abs(w) * ((2.0 / d.size) * (d.T @ xn))
    u1 = np.clip(u0 + level * np.sign(grad), -level, level)
    np.testing.assert_allclose(star["weight"].detach().numpy(), w + np.abs(w) * u1, atol=1e-14)


def test_attack_stays_in_the_relative_box(data):
    x, _ = data
    model = two_layer()
    level = 0.05
    star = pga_attack(
        model, x, model(x).detach(), mse, 0, attack_steps=7, mismatch_level=level, initial_std=1.0
    )
    for name, p in model.named_parameters():
        excess = (star[name] - p).abs() - level * p.abs()
        assert excess.max().item() <= 1e-12
    assert any(not torch.equal(star[n], p) for n, p in model.named_parameters())


def count_forwards(model):
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_beta_zero_skips_the_attack(data):
    x, y = data
    model = two_layer()
    calls = count_forwards(model)
    loss = mismatch_adversarial_loss(model, x, y, mse, mse, generator=0, beta_robustness=0.0, attack_steps=10)
    assert len(calls) == 1
    assert loss.item() == pytest.approx(mse(model(x), y).item(), rel=1e-12)
    calls.clear()
    mismatch_adversarial_loss(model, x, y, mse, mse, generator=0, beta_robustness=0.25, attack_steps=10)
    assert len(calls) == 12  # task + 10 attack steps + attacked


def test_batchnorm_statistics_move_only_in_the_task_pass(data):
    x, y = data
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()
    reference = copy.deepcopy(model)
    reference(x)
    mismatch_adversarial_loss(model, x, y, mse, mse, generator=0, attack_steps=3)
    torch.testing.assert_close(model[1].running_mean, reference[1].running_mean)
    torch.testing.assert_close(model[1].running_var, reference[1].running_var)
    assert int(model[1].num_batches_tracked) == 1
    mismatch_adversarial_loss(model, x, y, mse, mse, generator=0, noisy_forward_std=0.1, attack_steps=3)
    assert int(model[1].num_batches_tracked) == 2


def test_bad_arguments_raise(data):
    x, y = data
    model = two_layer()
    with pytest.raises(ValueError, match="mismatch_level"):
        mismatch_adversarial_loss(model, x, y, mse, mse, mismatch_level=-0.1)
    with pytest.raises(ValueError, match="beta_robustness"):
        mismatch_adversarial_loss(model, x, y, mse, mse, beta_robustness=float("nan"))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        mismatch_adversarial_loss(lambda v: v, x, y, mse, mse)
    frozen = two_layer().requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        pga_attack(frozen, x, frozen(x), mse)


def test_mismatch_curve_is_exact_at_zero_and_reproducible(data):
    x, y = data
    model = two_layer()

    def loss_of(params):
        return mse(functional_call(model, params, (x,)), y)

    curve = mismatch_curve(loss_of, model, [0.0, 0.1, 0.4], draws=30, key=4)
    assert curve.std[0] == pytest.approx(0.0, abs=1e-15)
    assert curve.mean[0] == pytest.approx(mse(model(x), y).item(), rel=1e-12)
    assert curve.mean[2] > curve.mean[0] and curve.std[2] > curve.std[1] > 0
    again = mismatch_curve(loss_of, dict(model.named_parameters()), [0.0, 0.1, 0.4], draws=30, key=4)
    np.testing.assert_array_equal(curve.mean, again.mean)
    with pytest.raises(ValueError, match="draws"):
        mismatch_curve(loss_of, model, [0.1], draws=0)
    with pytest.raises(ValueError, match="mismatch level"):
        mismatch_curve(loss_of, model, [-0.1])
