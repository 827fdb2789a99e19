"""Evaluation helpers: clean accuracy, accuracy on correct originals, unconditional robust accuracy."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from frameworks import require

torch = require("torch")
torch.set_num_threads(1)

from torch import nn  # noqa: E402

from hrcore.adapters.torch import accuracy, adversarial_accuracy, fgsm, predict  # noqa: E402


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    x = torch.randn(40, 4)
    y = model.eval()(x).argmax(dim=1)
    y[:10] = (y[:10] + 1) % 3  # a quarter of the originals are misclassified on purpose
    model.train()
    return model, x, y


def test_accuracy_counts_correct_predictions_in_eval_mode(classifier):
    model, x, y = classifier
    assert accuracy(model, x, y) == pytest.approx(0.75)
    assert accuracy(model, x, y, batch_size=7) == pytest.approx(0.75)
    assert model.training and model[3].training  # flags restored
    assert torch.equal(predict(model, x, batch_size=16), predict(model, x))


def test_adversarial_accuracy_conditions_on_correct_originals(classifier):
    model, x, y = classifier

    def flip_to_wrong_for_half(model, inputs, targets):
        # A fake "attack" with a known effect: inputs 0..19 are replaced by inputs predicted as another class.
        moved = inputs.clone()
        moved[:20] = x[10:30][torch.randperm(20, generator=torch.Generator().manual_seed(0))]
        return moved

    result = adversarial_accuracy(model, x, y, flip_to_wrong_for_half)
    clean = predict(model, x).numpy()
    adv = predict(model, flip_to_wrong_for_half(model, x, y)).numpy()
    labels = y.numpy()
    correct = clean == labels
    assert result.clean == pytest.approx(correct.mean())
    assert result.conditional == pytest.approx((adv == labels)[correct].mean())
    assert result.robust == pytest.approx((adv == labels).mean())
    assert result.conditional != pytest.approx(result.robust)


def test_fgsm_lowers_accuracy_and_batching_agrees(classifier):
    model, x, y = classifier
    attack = functools.partial(fgsm, eps=1.0)
    whole = adversarial_accuracy(model, x, y, attack)
    chunked = adversarial_accuracy(model, x, y, attack, batch_size=9)
    assert whole.conditional < 1.0
    np.testing.assert_allclose(whole, chunked)
    with pytest.raises(ValueError, match="batch_size"):
        accuracy(model, x, y, batch_size=0)
