"""unetzoo-lovasz, used through unetzoo's public API once installed."""

from __future__ import annotations

import torch

from unetzoo.losses import create_loss, list_losses


def test_registered_through_entry_point() -> None:
    assert "lovasz_hinge" in list_losses()
    assert type(create_loss("lovasz_hinge")).__name__ == "LovaszHingeLoss"


def test_hand_computed_value() -> None:
    # truth [1, 0], logits [1, 1]: errors 1 - s*x = [0, 2]; sorted [2 (truth 0), 0 (truth 1)].
    # Jaccard after the first error: 1 - (1 - 0) / (1 + 1) = 0.5, then 1 - 0/2 = 1 -> increments [0.5, 0.5].
    # loss = 2 * 0.5 + 0 * 0.5 = 1.0
    loss = create_loss("lovasz_hinge")
    value = loss(torch.tensor([[[[1.0, 1.0]]]]), torch.tensor([[[1, 0]]]))
    torch.testing.assert_close(value, torch.tensor(1.0))


def test_zero_for_confident_correct_predictions_and_gradients() -> None:
    target = torch.randint(0, 2, (2, 8, 8))
    logits = (target.float() * 2 - 1).mul(3).unsqueeze(1)
    loss = create_loss("lovasz_hinge", per_image=True)
    assert loss(logits, target).item() == 0.0
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_ignore_index() -> None:
    target = torch.tensor([[[1, 255]]])
    logits = torch.tensor([[[[5.0, -100.0]]]])
    assert create_loss("lovasz_hinge", ignore_index=255)(logits, target).item() == 0.0
