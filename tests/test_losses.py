"""Losses against hand-computed values, ignore index, class weights, deep supervision, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from unetzoo.losses import DeepSupervisionLoss, create_loss, list_losses

P = torch.tensor([0.8, 0.2, 0.6, 0.4], dtype=torch.float64)
T = torch.tensor([1, 0, 1, 1])


def binary_logits(p: torch.Tensor = P) -> torch.Tensor:
    return torch.logit(p).view(1, 1, 1, -1)


def binary_target(t: torch.Tensor = T) -> torch.Tensor:
    return t.view(1, 1, -1)


# TP = .8 + .6 + .4 = 1.8, FP = .2, FN = .2 + .4 + .6 = 1.2
TP, FP, FN = 1.8, 0.2, 1.2


def test_names() -> None:
    import unetzoo

    assert unetzoo.list_losses() == list_losses() and unetzoo.create_loss is create_loss
    assert {"bce", "dice", "dice_bce", "focal", "tversky", "focal_tversky", "dice_focal", "ce"} <= set(
        list_losses()
    )


def test_dice_binary_by_hand() -> None:
    expected = 1 - (2 * TP + 1) / (2 * TP + FP + FN + 1)  # smooth 1
    assert create_loss("dice")(binary_logits(), binary_target()).item() == pytest.approx(expected)
    assert create_loss("dice", smooth=0.0)(binary_logits(), binary_target()).item() == pytest.approx(
        1 - 2 * TP / (2 * TP + FP + FN)
    )


def test_tversky_and_focal_tversky_by_hand() -> None:
    ti = (TP + 1) / (TP + 0.3 * FP + 0.7 * FN + 1)
    assert create_loss("tversky")(binary_logits(), binary_target()).item() == pytest.approx(1 - ti)
    assert create_loss("focal_tversky")(binary_logits(), binary_target()).item() == pytest.approx(
        (1 - ti) ** 0.75
    )


def test_bce_and_focal_by_hand() -> None:
    pt = torch.tensor([0.8, 0.8, 0.6, 0.4], dtype=torch.float64)
    bce = -pt.log().mean().item()
    assert create_loss("bce")(binary_logits(), binary_target()).item() == pytest.approx(bce)
    alpha_t = torch.tensor([0.25, 0.75, 0.25, 0.25], dtype=torch.float64)
    focal = (alpha_t * (1 - pt) ** 2 * -pt.log()).mean().item()
    assert create_loss("focal")(binary_logits(), binary_target()).item() == pytest.approx(focal)


def test_dice_bce_weights() -> None:
    dice = create_loss("dice")(binary_logits(), binary_target()).item()
    bce = create_loss("bce")(binary_logits(), binary_target()).item()
    assert create_loss("dice_bce", alpha=0.3)(binary_logits(), binary_target()).item() == pytest.approx(
        0.3 * dice + 0.7 * bce
    )


def multiclass_case() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.tensor(
        [[2.0, 0.0, 1.0, -1.0], [0.0, 1.0, 0.0, 2.0], [-1.0, 0.5, 3.0, 0.0]], dtype=torch.float64
    )
    return logits.view(1, 3, 1, 4), torch.tensor([0, 1, 2, 1]).view(1, 1, 4)


def test_ce_and_multiclass_dice_by_hand() -> None:
    logits, target = multiclass_case()
    probs = logits.view(3, 4).softmax(0)
    ce = -sum(math.log(probs[c, i]) for i, c in enumerate([0, 1, 2, 1])) / 4
    assert create_loss("ce")(logits, target).item() == pytest.approx(ce)
    onehot = torch.nn.functional.one_hot(target.view(4), 3).T.double()
    tp, fp, fn = (probs * onehot).sum(1), (probs * (1 - onehot)).sum(1), ((1 - probs) * onehot).sum(1)
    dice = (1 - (2 * tp + 1) / (2 * tp + fp + fn + 1)).mean().item()
    assert create_loss("dice", mode="multiclass")(logits, target).item() == pytest.approx(dice)
    weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    weighted = ((1 - (2 * tp + 1) / (2 * tp + fp + fn + 1)) * weights).sum() / weights.sum()
    loss = create_loss("dice", mode="multiclass", class_weights=[1, 2, 3])
    assert loss(logits, target).item() == pytest.approx(weighted.item())


def test_dice_focal_with_class_weights_by_hand() -> None:
    logits, target = multiclass_case()
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    logp = logits.view(3, 4).log_softmax(0)
    ids = [0, 1, 2, 1]
    focal = sum(w[c] * (1 - logp[c, i].exp()) ** 2 * -logp[c, i] for i, c in enumerate(ids)) / 4
    dice = create_loss("dice", mode="multiclass", class_weights=[1, 2, 3])(logits, target)
    combined = create_loss("dice_focal", mode="multiclass", class_weights=[1, 2, 3], alpha=0.4)(
        logits, target
    )
    assert combined.item() == pytest.approx(0.4 * dice.item() + 0.6 * focal.item())


def test_multilabel_dice_averages_channels() -> None:
    p = torch.tensor([[0.9, 0.1, 0.7], [0.3, 0.8, 0.5]], dtype=torch.float64)
    t = torch.tensor([[1, 0, 1], [0, 1, 1]])
    logits, target = torch.logit(p).view(1, 2, 1, 3), t.view(1, 2, 1, 3)
    per = []
    for c in range(2):
        tp = (p[c] * t[c]).sum()
        fp = (p[c] * (1 - t[c])).sum()
        fn = ((1 - p[c]) * t[c]).sum()
        per.append(1 - (2 * tp + 1) / (2 * tp + fp + fn + 1))
    assert create_loss("dice", mode="multilabel")(logits, target).item() == pytest.approx(float(sum(per) / 2))


@pytest.mark.parametrize("name", ["bce", "dice", "focal", "tversky", "dice_bce"])
def test_ignore_index_equals_dropping_the_pixels(name: str) -> None:
    target = torch.tensor([1, 0, 255, 1, 255, 0])
    logits = torch.tensor([2.0, -1.0, 5.0, 0.5, -3.0, 1.0], dtype=torch.float64)
    keep = target != 255
    full = create_loss(name, ignore_index=255)(logits.view(1, 1, 1, -1), target.view(1, 1, -1))
    kept = create_loss(name)(logits[keep].view(1, 1, 1, -1), target[keep].view(1, 1, -1))
    assert full.item() == pytest.approx(kept.item())


def test_ignore_index_multiclass() -> None:
    logits, target = multiclass_case()
    target = target.clone()
    target[0, 0, 2] = 255
    keep = [0, 1, 3]
    for name in ("ce", "dice", "focal"):
        full = create_loss(name, mode="multiclass", ignore_index=255)(logits, target).item()
        kept = create_loss(name, mode="multiclass")(logits[..., keep], target[..., keep]).item()
        assert full == pytest.approx(kept), name


def test_deep_supervision_weighted_sum() -> None:
    dice = create_loss("dice")
    main, aux = binary_logits(), binary_logits(torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64))
    ds = DeepSupervisionLoss(dice)
    expected = (dice(main, binary_target()) + 0.5 * dice(aux, binary_target())) / 1.5
    assert ds([main, aux], binary_target()).item() == pytest.approx(expected.item())
    assert ds(main, binary_target()).item() == pytest.approx(dice(main, binary_target()).item())
    with pytest.raises(ValueError, match="2 weights for 3"):
        DeepSupervisionLoss(dice, [1, 1])([main, main, main], binary_target())


CASES = {
    "binary": (1, lambda: torch.randint(0, 2, (2, 3, 3))),
    "multiclass": (3, lambda: torch.randint(0, 3, (2, 3, 3))),
    "multilabel": (3, lambda: torch.randint(0, 2, (2, 3, 3, 3))),
}


@pytest.mark.parametrize("mode", list(CASES))
@pytest.mark.parametrize(
    "name", ["bce", "ce", "dice", "tversky", "focal_tversky", "focal", "dice_bce", "dice_focal"]
)
def test_gradients_are_correct(name: str, mode: str) -> None:
    if (name == "bce" and mode == "multiclass") or (name == "ce" and mode != "multiclass"):
        with pytest.raises(ValueError, match="is for"):
            create_loss(name, mode=mode)
        return
    channels, target = CASES[mode]
    logits = torch.randn(2, channels, 3, 3, dtype=torch.float64, requires_grad=True)
    loss = create_loss(name, mode=mode)
    t = target()
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (logits,))


def test_wrong_shapes_are_clear() -> None:
    with pytest.raises(ValueError, match=r"binary mode expects logits \(N, 1, ...\)"):
        create_loss("dice")(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="target class id 3 >= number of classes 3"):
        create_loss("dice", mode="multiclass")(torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), 3))
    with pytest.raises(ValueError, match="unknown loss mode 'multi'"):
        create_loss("dice", mode="multi")
