"""input_adversarial_loss with the NSL contract: closed form, structures, graph reuse, NSL's bugs fixed."""

from __future__ import annotations

import pytest
from frameworks import require

torch = require("torch")

from torch import nn  # noqa: E402

from hrcore.adapters.torch import AdvConfig, input_adversarial_loss  # noqa: E402


def per_sample_mse(predictions, labels):
    return ((predictions - labels) ** 2).sum(dim=1)


@pytest.fixture
def regression():
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    y = torch.randn(6, 2, dtype=torch.float64)
    return model, x, y


def manual_l2_step(model, x, y, step):
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(per_sample_mse(model(leaf), y).mean(), leaf)
    return x + step * grad / grad.norm(dim=1, keepdim=True)


def test_single_step_is_the_normalised_gradient_step(regression):
    model, x, y = regression
    config = AdvConfig(adv_step_size=0.05)
    expected = per_sample_mse(model(manual_l2_step(model, x, y, 0.05)), y).mean()
    assert input_adversarial_loss(x, y, model, per_sample_mse, adv_config=config).item() == pytest.approx(
        expected.item(), rel=1e-12
    )


def test_reusing_the_labeled_loss_gives_the_same_loss_and_keeps_the_graph(regression):
    model, x, y = regression
    config = AdvConfig(adv_step_size=0.05)
    fresh = input_adversarial_loss(x, y, model, per_sample_mse, adv_config=config)
    features = x.clone().requires_grad_(True)
    labeled = per_sample_mse(model(features), y).mean()
    reused = input_adversarial_loss(
        features, y, model, per_sample_mse, adv_config=config, labeled_loss=labeled
    )
    assert reused.item() == pytest.approx(fresh.item(), rel=1e-12)
    (labeled + 0.2 * reused).backward()  # the caller's graph survived
    assert model.weight.grad is not None
    with pytest.raises(ValueError, match="requires_grad"):
        input_adversarial_loss(x, y, model, per_sample_mse, labeled_loss=per_sample_mse(model(x), y).mean())


def test_dict_features_share_one_l2_norm_and_scalar_clips_apply_to_all():
    torch.manual_seed(1)
    a_layer, b_layer = nn.Linear(2, 1).double(), nn.Linear(3, 1).double()

    def model(features):
        return a_layer(features["a"]) + b_layer(features["b"]) + features["ids"].double()[:, None]

    features = {
        "a": torch.rand(4, 2, dtype=torch.float64),
        "b": torch.rand(4, 3, dtype=torch.float64),
        "ids": torch.arange(4),
    }
    y = torch.zeros(4, 1, dtype=torch.float64)
    seen = {}

    def recording_model(inputs):
        seen.update(inputs)
        return model(inputs)

    config = AdvConfig(adv_step_size=0.3, clip_value_min=0.0, clip_value_max=1.0)
    input_adversarial_loss(features, y, recording_model, per_sample_mse, adv_config=config)
    assert torch.equal(seen["ids"], features["ids"])
    for name in ("a", "b"):
        assert seen[name].min() >= 0.0 and seen[name].max() <= 1.0
    unclipped = {}
    input_adversarial_loss(
        features, y, lambda f: unclipped.update(f) or model(f), per_sample_mse, adv_config=AdvConfig(0.2, 0.3)
    )
    joint = torch.cat([unclipped["a"] - features["a"], unclipped["b"] - features["b"]], dim=1)
    torch.testing.assert_close(joint.norm(dim=1), torch.full((4,), 0.3, dtype=torch.float64))


def test_pgd_iterations_stay_in_the_epsilon_ball(regression):
    model, x, y = regression
    captured = []
    config = AdvConfig(adv_step_size=0.2, pgd_iterations=4, pgd_epsilon=0.25, adv_grad_norm="infinity")
    input_adversarial_loss(x, y, lambda f: captured.append(f) or model(f), per_sample_mse, adv_config=config)
    final = captured[-1]
    assert (final - x).abs().max() <= 0.25 + 1e-12
    assert (final - x).abs().max() >= 0.25 - 1e-12
    config = AdvConfig(
        adv_step_size=0.1, pgd_iterations=2, pgd_epsilon=0.3, adv_grad_norm="l1", random_init=True
    )
    assert torch.isfinite(input_adversarial_loss(x, y, model, per_sample_mse, adv_config=config))


def test_sample_weights_must_be_one_per_example(regression):
    model, x, y = regression
    weights = torch.tensor([1.0, 0.0, 2.0, 1.0, 1.0, 0.5], dtype=torch.float64)
    value = input_adversarial_loss(x, y, model, per_sample_mse, sample_weights=weights)
    unweighted = per_sample_mse(model(manual_l2_step(model, x, y, 0.001)), y)
    assert value.item() == pytest.approx((weights * unweighted).sum().item() / 6, rel=1e-6)
    with pytest.raises(ValueError, match=r"sample_weights must have shape \(6,\)"):
        input_adversarial_loss(x, y, model, per_sample_mse, sample_weights=weights[:, None])
    with pytest.raises(ValueError, match='reduction="none"'):
        input_adversarial_loss(x, y, model, lambda p, t: per_sample_mse(p, t).mean(), sample_weights=weights)


def test_bad_configuration_raises(regression):
    model, x, y = regression
    with pytest.raises(ValueError, match="pgd_epsilon"):
        AdvConfig(random_init=True)
    with pytest.raises(ValueError, match="pgd_iterations"):
        AdvConfig(pgd_iterations=0)
    with pytest.raises(ValueError, match="norm"):
        AdvConfig(adv_grad_norm="l3")
    with pytest.raises(ValueError, match="gradient_tape"):
        input_adversarial_loss(x, y, model, per_sample_mse, gradient_tape=object())
    with pytest.raises(TypeError, match="floating-point"):
        input_adversarial_loss(torch.arange(6)[:, None], y, model, per_sample_mse)
    with pytest.raises(ValueError, match="batch size"):
        input_adversarial_loss([x, x[:3]], y, lambda f: model(f[0]), per_sample_mse)
