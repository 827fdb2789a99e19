"""The original HR_Neural_Networks README loop runs unchanged (import line aside) and trains."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from frameworks import require

torch = require("torch")
torch.set_num_threads(1)  # tiny models: a second intra-op thread only adds contention on 2 shared cores

from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import hrcore  # noqa: E402
from hrcore.adapters.torch import HR_Neural_Networks  # noqa: E402
from hrcore.geometry import to_pixels  # noqa: E402


def loader(data: str, image: bool) -> DataLoader:
    """600 examples in batches of 128: the last batch (88) is short."""
    generator = torch.Generator().manual_seed(0)
    if data == "digits":
        digits = load_digits()
        x = torch.tensor(digits.data[:600] / 16.0, dtype=torch.float32)
        y = torch.tensor(digits.target[:600])
    else:
        # Gaussian classes far apart compared with ε = 0.5 in either norm, so they stay learnable.
        y = torch.randint(0, 10, (600,), generator=generator)
        x = 3.0 * torch.randn(10, 64, generator=generator)[y] + torch.randn(600, 64, generator=generator)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    return DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, generator=generator)


def readme_model(image: bool) -> nn.Module:
    torch.manual_seed(0)
    if image:
        return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


# The README's training function, verbatim apart from recording the losses.
def train(HR, model, device, train_loader, optimizer, epoch, record):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):  # noqa: B007 - the README's loop
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        HR_loss = HR.HR_criterion(inputs=data, targets=target, device=device)
        HR_loss.backward()
        optimizer.step()
        record.append(HR_loss.item())


@pytest.mark.parametrize(
    ("data", "image", "noise_set"),
    [
        ("random", False, "l-2"),
        ("random", False, "l-inf"),
        ("random", True, "l-inf"),
        ("digits", True, "l-2"),
    ],
)
def test_readme_loop_trains_without_printing_or_warning(data, image, noise_set, capsys):
    filters_before = list(warnings.filters)
    model = readme_model(image)
    device = torch.device("cpu")
    criterion = nn.CrossEntropyLoss(reduction="none")  # note the change from mean -> none
    α_choice = 0.05
    r_choice = 0.1
    ϵ_choice = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HR = HR_Neural_Networks(
            NN_model=model,
            train_batch_size=128,
            loss_fn=criterion,
            normalisation_used=None,
            α_choice=α_choice,
            r_choice=r_choice,
            ϵ_choice=ϵ_choice,
            noise_set=noise_set,
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        losses: list[float] = []
        train_loader = loader(data, image)
        for epoch in range(1, 5):
            train(HR, model, device, train_loader, optimizer, epoch, losses)
    per_epoch = np.asarray(losses).reshape(4, -1).mean(axis=1)
    assert np.all(np.diff(per_epoch) < 0), per_epoch
    assert per_epoch[-1] < 0.8 * per_epoch[0], per_epoch
    assert capsys.readouterr() == ("", "")
    assert warnings.filters == filters_before
    assert HR.last_solution.weights.shape == (600 - 4 * 128,)  # the short last batch, no rebuild


def test_precomputed_losses_device_from_inputs_and_weights_output():
    torch.manual_seed(0)
    losses = torch.rand(10, dtype=torch.float64)
    HR = HR_Neural_Networks(nn.Identity(), 128, None, None, 0.1, 0.2, 0.0, output_return="weights")
    weights = HR.HR_criterion(inf_loss=losses.numpy())
    expected = hrcore.solve(losses.numpy(), alpha=0.1, r=0.2)
    assert weights.shape == (11,)
    np.testing.assert_allclose(weights.numpy(), expected.full_weights, atol=1e-12)
    assert weights.sum().item() == pytest.approx(1.0)
    loss_api = HR_Neural_Networks(nn.Identity(), 128, None, None, 0.1, 0.2, 0.0)
    value = loss_api.HR_criterion(inf_loss=losses.clone().requires_grad_(True))
    assert value.item() == pytest.approx(expected.value, rel=1e-12)


def test_alpha_and_r_zero_are_exact_erm():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(9, 4), torch.randint(0, 3, (9,))
    HR = HR_Neural_Networks(model, 128, nn.CrossEntropyLoss(reduction="none"), None, 0, 0, 0)
    mean = nn.functional.cross_entropy(model(x), y)
    assert HR.HR_criterion(inputs=x, targets=y).item() == pytest.approx(mean.item(), rel=1e-6)
    assert HR.α_choice == 0.0 and HR.r_choice == 0.0


def test_ffgsm_and_pixel_space_normalisation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    pixels = torch.rand(6, 3, 4, 4)
    x = (pixels - 0.5) / 0.25
    y = torch.randint(0, 5, (6,))
    HR = HR_Neural_Networks(
        model, 6, None, (mean, std), 0.05, 0.1, 8 / 255, defense_method="FFGSM", noise_set="l-inf",
        adversarial_step_size=10 / 255, bounds=(0.0, 1.0),
    )  # fmt: skip
    adversarial = HR._criterion.perturb(x, y)
    back = to_pixels(adversarial, (mean, std))
    assert torch.all((back - pixels).abs() <= 8 / 255 + 1e-5)
    assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6
    assert torch.isfinite(HR.HR_criterion(inputs=x, targets=y))


def test_bad_arguments_raise():
    model = nn.Linear(4, 3)
    ce = nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(ValueError, match="defense_method"):
        HR_Neural_Networks(model, 8, ce, None, 0.1, 0.1, 0.1, defense_method="CW")
    with pytest.raises(ValueError, match="output_return"):
        HR_Neural_Networks(model, 8, ce, None, 0.1, 0.1, 0.1, output_return="numpy")
    with pytest.raises(ValueError, match="norm"):
        HR_Neural_Networks(model, 8, ce, None, 0.1, 0.1, 0.1, noise_set="l-3")
    with pytest.raises(ValueError, match="alpha"):
        HR_Neural_Networks(model, 8, ce, None, 1.0, 0.1, 0.1)
    with pytest.raises(ValueError, match="ambiguity"):
        HR_Neural_Networks(model, 8, ce, None, 0.1, 0.1, 0.1, learning_approach="KL")
    with pytest.raises(ValueError, match='reduction="none"'):
        HR_Neural_Networks(model, 8, nn.CrossEntropyLoss(), None, 0.1, 0.1, 0.1)
    with pytest.raises(ValueError, match="train_batch_size"):
        HR_Neural_Networks(model, 0, ce, None, 0.1, 0.1, 0.1)
    with pytest.raises(ValueError, match="inputs and targets"):
        HR_Neural_Networks(model, 8, ce, None, 0.1, 0.1, 0.1).HR_criterion(inf_loss=torch.rand(3))
