"""segcourse losses against MONAI and segmentation_models_pytorch on the same inputs, at documented equivalent settings.

Each test skips with a reason where the peer library is absent. segmentation_models_pytorch's top-level import needs
timm (and through it torchvision, which would pull a CUDA torch), so its self-contained `losses` subpackage is loaded
on its own when the package does not import.
"""
import importlib, importlib.util, sys
from pathlib import Path

import pytest
import torch

from segcourse.losses import (
    soft_dice_loss, tversky_loss, focal_tversky_loss, generalised_dice_loss, iou_loss, focal_loss,
    dice_bce_loss, boundary_loss, hausdorff_dt_loss)

torch.set_num_threads(1)
TOL = dict(abs=1e-5, rel=1e-5)


def _smp_losses():
    try:
        return importlib.import_module('segmentation_models_pytorch.losses')
    except ImportError:
        spec = importlib.util.find_spec('segmentation_models_pytorch')
        if spec is None: pytest.skip("segmentation_models_pytorch is not installed")
        folder = Path(spec.submodule_search_locations[0]) / 'losses'
        name = '_smp_losses_alone'
        if name in sys.modules: return sys.modules[name]
        sub = importlib.util.spec_from_file_location(name, folder / '__init__.py', submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(sub); sys.modules[name] = module
        sub.loader.exec_module(module)
        return module


def inputs(shape=(3, 1, 16, 16), seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=gen) * 3
    target = torch.zeros(shape); target[..., 4:10, 5:12] = 1  # every image has foreground
    target[0, ..., 0:2, 0:3] = 1
    return logits.double(), target.double()


# ---- MONAI -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def monai_losses():
    return pytest.importorskip('monai.losses', reason="MONAI is not installed (pip install monai)")


@pytest.mark.parametrize('squared', [False, True])
@pytest.mark.parametrize('per_image', [True, False])
def test_dice_matches_monai(monai_losses, squared, per_image):
    logits, target = inputs()
    theirs = monai_losses.DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0, squared_pred=squared, batch=not per_image)
    ours = soft_dice_loss(logits, target, smooth_num=1.0, smooth_den=1.0, squared=squared, per_image=per_image)
    assert ours.item() == pytest.approx(theirs(logits, target).item(), **TOL)


def test_dice_per_image_none_matches_monai(monai_losses):
    logits, target = inputs()
    theirs = monai_losses.DiceLoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5, reduction='none')(logits, target)
    ours = soft_dice_loss(logits, target, smooth_num=1e-5, smooth_den=1e-5, reduction='none')
    assert ours.tolist() == pytest.approx(theirs.flatten().tolist(), **TOL)


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (0.0, None), (1.5, 0.7)])
def test_focal_matches_monai(monai_losses, gamma, alpha):
    logits, target = inputs()
    theirs = monai_losses.FocalLoss(use_softmax=False, gamma=gamma, alpha=alpha, reduction='mean')
    assert focal_loss(logits, target, gamma=gamma, alpha=alpha).item() == pytest.approx(theirs(logits, target).item(), **TOL)


@pytest.mark.parametrize('alpha,beta', [(0.3, 0.7), (0.5, 0.5), (0.9, 0.1)])
def test_tversky_matches_monai(monai_losses, alpha, beta):
    logits, target = inputs()
    theirs = monai_losses.TverskyLoss(sigmoid=True, alpha=alpha, beta=beta, smooth_nr=1.0, smooth_dr=1.0)
    assert tversky_loss(logits, target, alpha=alpha, beta=beta).item() == pytest.approx(theirs(logits, target).item(), **TOL)


def test_generalised_dice_matches_monai(monai_losses):
    # MONAI normalises nothing; with a tiny smoothing our weight normalisation does not change the ratio
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 8, 8, generator=gen).double()
    labels = torch.randint(0, 3, (2, 1, 8, 8), generator=gen)
    labels[1][labels[1] == 2] = 0  # one class absent from the second image
    theirs = monai_losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1e-12, smooth_dr=1e-12)
    ours = generalised_dice_loss(logits, labels, smooth=1e-12)
    assert ours.item() == pytest.approx(theirs(logits, labels).item(), **TOL)


def test_dice_bce_matches_monai_dice_ce(monai_losses):
    logits, target = inputs()
    theirs = monai_losses.DiceCELoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0, lambda_dice=1.0, lambda_ce=1.0)
    assert dice_bce_loss(logits, target).item() == pytest.approx(theirs(logits, target).item(), **TOL)


def test_boundary_matches_monai(monai_losses):
    if not hasattr(monai_losses, 'BoundaryLoss'): pytest.skip("this MONAI version has no BoundaryLoss")
    logits, target = inputs()
    theirs = monai_losses.BoundaryLoss(sigmoid=True)(logits.float(), target.float())
    assert boundary_loss(logits, target).item() == pytest.approx(theirs.item(), **TOL)


@pytest.mark.parametrize('alpha', [2.0, 1.0])
def test_hausdorff_dt_matches_monai(monai_losses, alpha):
    if not hasattr(monai_losses, 'HausdorffDTLoss'): pytest.skip("this MONAI version has no HausdorffDTLoss")
    logits, target = inputs()
    theirs = monai_losses.HausdorffDTLoss(sigmoid=True, alpha=alpha, include_background=True)(logits.float(), target.float())
    assert hausdorff_dt_loss(logits, target, alpha=alpha).item() == pytest.approx(theirs.item(), **TOL)


# ---- segmentation_models_pytorch (binary mode: one Dice over the whole batch, smooth in numerator and denominator) ---

def test_dice_matches_smp():
    smp = _smp_losses()
    logits, target = inputs()
    # smp 0.6 computes Dice as Tversky(0.5, 0.5): (TP + s) / (TP + FP/2 + FN/2 + s), so its s is half our smoothing
    theirs = smp.DiceLoss(mode='binary', from_logits=True, smooth=0.5)
    ours = soft_dice_loss(logits, target, smooth_num=1.0, smooth_den=1.0, per_image=False)
    assert ours.item() == pytest.approx(theirs(logits, target).item(), **TOL)


def test_jaccard_matches_smp():
    smp = _smp_losses()
    logits, target = inputs()
    theirs = smp.JaccardLoss(mode='binary', from_logits=True, smooth=1.0)
    assert iou_loss(logits, target, per_image=False).item() == pytest.approx(theirs(logits, target).item(), **TOL)


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (2.0, None), (1.0, 0.6)])
def test_focal_matches_smp(gamma, alpha):
    smp = _smp_losses()
    logits, target = inputs()
    theirs = smp.FocalLoss(mode='binary', gamma=gamma, alpha=alpha)
    assert focal_loss(logits, target, gamma=gamma, alpha=alpha).item() == pytest.approx(theirs(logits, target).item(), **TOL)


@pytest.mark.parametrize('alpha,beta,gamma', [(0.3, 0.7, 1.0), (0.5, 0.5, 1.0), (0.3, 0.7, 0.75)])
def test_tversky_matches_smp(alpha, beta, gamma):
    smp = _smp_losses()
    logits, target = inputs()
    theirs = smp.TverskyLoss(mode='binary', from_logits=True, alpha=alpha, beta=beta, gamma=gamma, smooth=1.0)
    ours = focal_tversky_loss(logits, target, alpha=alpha, beta=beta, gamma=gamma, per_image=False)
    assert ours.item() == pytest.approx(theirs(logits, target).item(), **TOL)
