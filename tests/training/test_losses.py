import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from deepfocus_radio.exceptions import ConfigError
from deepfocus_radio.training.losses import SSIMLoss, WeightedLoss, build_loss, ssim
from deepfocus_radio.training.schedule import LearningRateSchedule


def test_ssim_matches_scikit_image_in_2d_and_3d():
    rng = np.random.default_rng(0)
    for shape in ((24, 24), (12, 16, 16)):
        target = rng.normal(size=shape).cumsum(axis=-1)
        noisy = target + rng.normal(scale=0.5, size=shape)
        data_range = float(target.max() - target.min())
        expected = structural_similarity(target, noisy, data_range=data_range, win_size=7,
                                         gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
        found = ssim(torch.from_numpy(noisy)[None, None], torch.from_numpy(target)[None, None])
        # scikit-image crops the borders; we average over the valid region too
        assert float(found) == pytest.approx(expected, abs=0.02)
        same = ssim(torch.from_numpy(target)[None, None], torch.from_numpy(target)[None, None])
        assert float(same) == pytest.approx(1.0, abs=1e-6)


def test_ssim_small_inputs_and_shape_errors():
    x = torch.rand(2, 1, 4, 5, 5)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="same 2D or 3D shape"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ValueError, match="same 2D or 3D shape"):
        ssim(torch.rand(8, 8), torch.rand(8, 8))


def test_ssim_loss_is_differentiable_and_decreases_with_similarity():
    target = torch.rand(1, 1, 16, 16)
    far = torch.rand(1, 1, 16, 16, requires_grad=True)
    near = (target + 0.05 * torch.rand(1, 1, 16, 16)).requires_grad_()
    loss = SSIMLoss(window=5)
    assert float(loss(near, target).detach()) < float(loss(far, target).detach())
    loss(far, target).backward()
    assert far.grad is not None and torch.isfinite(far.grad).all()


def test_weighted_loss_sums_terms():
    prediction, target = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]])
    loss = build_loss({"terms": {"l1": 0.5, "mse": 2.0, "huber": 1.0}, "huber_delta": 1.0})
    assert isinstance(loss, WeightedLoss)
    total = float(loss(prediction, target))
    l1, mse, huber = 1.5, 2.5, (0.5 + 1.5) / 2
    assert total == pytest.approx(0.5 * l1 + 2.0 * mse + huber)
    assert loss.last_terms == pytest.approx({"l1": l1, "mse": mse, "huber": huber})
    ce = build_loss({"terms": {"ce": 1.0}})
    logits, labels = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    assert float(ce(logits, labels)) == pytest.approx(math.log(1 + math.exp(-2.0)))
    with pytest.raises(ConfigError, match="'loss.terms.dice' is not a known loss"):
        build_loss({"terms": {"dice": 1.0}})


def _schedule(kind, **options):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    return LearningRateSchedule(optimizer, base_lr=1.0, kind=kind, epochs=4, steps_per_epoch=2,
                                **options), optimizer


def test_warmup_then_cosine():
    schedule, optimizer = _schedule("cosine", warmup_epochs=1, min_lr=0.1)
    rates = [schedule.step(epoch, step) for epoch in range(4) for step in range(2)]
    assert rates[:2] == [0.5, 1.0]
    assert rates[2] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(rates[2:], rates[3:]))
    assert rates[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))
    assert optimizer.param_groups[0]["lr"] == rates[-1]
    constant, _ = _schedule("none")
    assert {constant.rate(e, s) for e in range(4) for s in range(2)} == {1.0}


def test_plateau_reduces_and_state_roundtrips():
    schedule, _ = _schedule("plateau", plateau_factor=0.5, plateau_patience=1, min_lr=0.2)
    for loss in (1.0, 1.0, 1.0):
        schedule.end_epoch(loss)
    assert schedule.rate(1, 0) == 0.5
    for loss in (2.0, 2.0, 2.0, 2.0):
        schedule.end_epoch(loss)
    assert schedule.rate(1, 0) == 0.2  # floor
    other, _ = _schedule("plateau")
    other.load_state_dict(schedule.state_dict())
    assert other.state_dict() == schedule.state_dict()
