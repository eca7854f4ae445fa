"""Acceptance tests for `segcourse.models.registry` (issue 4): one interface for every model.

Shapes at even and odd sizes, 1 and 3 channels, batch 1; gradients reach every parameter; eval is
deterministic and dropout makes training passes differ; a skip's parameter count; U-Net++ deep
supervision; channels_last and bf16/fp16 autocast on the CPU; bad arguments. Widths are tiny so the
whole file runs in seconds on one thread. `torch.compile` lives in `benchmarks/models.py` (slow to
compile on 2 cores).
"""
import math

import pytest
import torch

from segcourse.core import seed_everything
from segcourse.models import (
    MODELS, get_model, model_summary, summary_table, SegNet, TransUNet, UNet, UNetPlusPlus,
    deep_supervision_loss)

torch.set_num_threads(1)

def n_params(m): return sum(p.numel() for p in m.parameters())

TINY = dict(features=(4, 8, 16))
def tiny(name, **kw):
    if name == 'transunet': kw.setdefault('heads', 2)
    return get_model(name, **{**TINY, **kw})

NAMES = list(MODELS)

# --- one interface -------------------------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('size', [(127, 93), (256, 256)])
@pytest.mark.parametrize('in_channels', [1, 3])
def test_shapes(name, size, in_channels):
    seed_everything(0)
    m = tiny(name, in_channels=in_channels, out_channels=2).eval()
    with torch.no_grad(): y = m(torch.randn(1, in_channels, *size))
    assert y.shape == (1, 2, *size) and y.dtype == torch.float32

@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('size', [(1, 1), (5, 3), (33, 17)])
def test_tiny_and_odd_sizes(name, size):
    with torch.no_grad(): assert tiny(name).eval()(torch.randn(2, 1, *size)).shape == (2, 1, *size)

@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('norm', ['batch', 'instance', 'group', None])
def test_norms(name, norm):
    assert tiny(name, norm=norm)(torch.randn(2, 1, 20, 24)).shape == (2, 1, 20, 24)

@pytest.mark.parametrize('name', ['unet', 'unetpp', 'transunet'])
def test_bilinear(name):
    assert tiny(name, up='bilinear')(torch.randn(2, 1, 20, 24)).shape == (2, 1, 20, 24)

def test_shared_argument_names():
    import inspect
    for cls in MODELS.values():
        params = inspect.signature(cls).parameters
        for arg in ('in_channels', 'out_channels', 'features', 'dropout', 'norm'): assert arg in params, (cls, arg)

# --- training behaviour ----------------------------------------------------------------------------

def _loss(out): return sum(o.float().pow(2).mean() for o in out) if isinstance(out, list) else out.float().pow(2).mean()

@pytest.mark.parametrize('name,kw', [(n, {}) for n in NAMES] + [('unetpp', dict(deep_supervision=True)),
                                                                 ('unet', dict(up='bilinear', norm=None))])
def test_gradients_reach_every_parameter(name, kw):
    seed_everything(0)
    m = tiny(name, dropout=0.1, **kw).train()
    _loss(m(torch.randn(2, 1, 24, 20))).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing

@pytest.mark.parametrize('name', NAMES)
def test_eval_deterministic_and_dropout_samples(name):
    seed_everything(0)
    m, x = tiny(name, dropout=0.3), torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        m.eval(); assert torch.equal(m(x), m(x))
        m.train(); assert not torch.equal(m(x), m(x))
        m0 = tiny(name).train()
        assert torch.equal(m0(x), m0(x))  # no dropout: training mode is deterministic too

@pytest.mark.parametrize('name', NAMES)
def test_seeded_initialisation(name):
    seed_everything(3); a = tiny(name)
    seed_everything(3); b = tiny(name)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

def test_dropout_placement():
    count = lambda m: sum(isinstance(l, torch.nn.Dropout2d) for l in m.modules())
    assert count(UNet(**TINY, dropout=0.2)) == 2 + 1 + 2
    assert count(UNet(**TINY, dropout=0.2, dropout_at=('bottleneck',))) == 1
    assert count(UNet(**TINY, dropout=0.0)) == 0

# --- skips ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('cls', [UNet, TransUNet])
@pytest.mark.parametrize('norm', ['batch', None])
def test_skip_parameter_formula(cls, norm):
    "Switching off the skip at level i removes 3*3*f_i*f_i weights from that decoder's first conv."
    f = (4, 8, 16, 32)
    full = n_params(cls(features=f, norm=norm))
    for i in range(3):
        skips = tuple(j != i for j in range(3))
        assert full - n_params(cls(features=f, norm=norm, skips=skips)) == 9 * f[i] ** 2
    assert full - n_params(cls(features=f, norm=norm, skips=False)) == 9 * sum(w * w for w in f[:-1])

def test_skip_off_changes_output_only_through_that_path():
    seed_everything(0)
    m = UNet(**TINY, skips=(False, True)).eval()
    assert m.decoders[0][0].in_channels == 4 and m.decoders[1][0].in_channels == 16

# --- U-Net++ -------------------------------------------------------------------------------------------

def test_unetpp_deep_supervision_heads():
    m = UNetPlusPlus(features=(4, 8, 16, 32), deep_supervision=True).train()
    outs = m(torch.randn(2, 1, 37, 29))
    assert isinstance(outs, list) and len(outs) == 3 and all(o.shape == (2, 1, 37, 29) for o in outs)
    assert m.eval()(torch.randn(2, 1, 37, 29)).shape == (2, 1, 37, 29)
    assert not isinstance(UNetPlusPlus(features=(4, 8, 16, 32)).train()(torch.randn(2, 1, 16, 16)), list)

def test_unetpp_pruning_equals_training_heads():
    seed_everything(0)
    m, x = UNetPlusPlus(features=(4, 8, 16, 32), deep_supervision=True, norm=None), torch.randn(1, 1, 24, 24)
    with torch.no_grad():
        heads = m.train()(x); m.eval()
        for p in (1, 2, 3):
            m.prune = p
            assert torch.equal(m(x), heads[p - 1])

def test_unetpp_pruning_saves_work():
    m = UNetPlusPlus(deep_supervision=True)
    macs = []
    for p in (1, 2, 3):
        m.prune = p
        macs.append(model_summary(m, (1, 64, 64))['macs'])
    assert macs[0] < macs[1] < macs[2]

def test_unetpp_prune_errors():
    with pytest.raises(ValueError, match=r"prune must be an int in 1\.\.3"): UNetPlusPlus(deep_supervision=True, prune=0)
    with pytest.raises(ValueError, match="needs deep_supervision=True"): UNetPlusPlus(prune=2)

def test_deep_supervision_loss():
    t = torch.zeros(1, 1, 2, 2)
    mse = lambda a, b: ((a - b) ** 2).mean()
    assert deep_supervision_loss([torch.ones_like(t), 3 * torch.ones_like(t)], t, mse).item() == 5.0

# --- speed paths: channels_last, autocast ----------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_channels_last(name):
    seed_everything(0)
    m, x = tiny(name).eval(), torch.randn(2, 1, 24, 20)
    with torch.no_grad():
        ref = m(x)
        m = m.to(memory_format=torch.channels_last)
        y = m(x.to(memory_format=torch.channels_last))
    assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-5)

@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_cpu(name, dtype):
    seed_everything(0)
    m, x = tiny(name).train(), torch.randn(2, 1, 24, 20)
    with torch.autocast('cpu', dtype=dtype):
        y = m(x)
        loss = _loss(y)
    loss.backward()
    assert y.shape == (2, 1, 24, 20) and torch.isfinite(y.float()).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())

# --- registry and summary ----------------------------------------------------------------------------

def test_get_model_errors():
    with pytest.raises(ValueError, match=r"model='segnett' is not valid; choose one of \['unet', 'segnet', 'unetpp', 'transunet'\]"):
        get_model('segnett')
    with pytest.raises(TypeError, match="SegNet has no argument 'skips'"): get_model('segnet', skips=False)
    with pytest.raises(TypeError, match="model name must be a string"): get_model(UNet)

@pytest.mark.parametrize('kw,match', [
    (dict(norm='layer'), "norm='layer' is not valid"), (dict(up='nearest'), "up='nearest' is not valid"),
    (dict(features=(4,)), "at least 2 levels"), (dict(features=(4, -8)), "positive ints"), (dict(features=8), "positive ints"),
    (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"), (dict(in_channels=0), "in_channels must be a positive int"),
    (dict(out_channels=1.5), "out_channels must be a positive int"), (dict(skips=(True,)), "skips must be a bool or 2 bools"),
    (dict(dropout_at='head'), "dropout_at='head' is not valid")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match): UNet(**{**TINY, **kw})

def test_model_summary_hand_values():
    s = model_summary(UNet(), (1, 128, 128))
    assert s['params'] == s['trainable'] == n_params(UNet())
    assert s['output_shape'] == (1, 1, 128, 128) and s['receptive_field'] == 68
    first_conv = 128 * 128 * 16 * 9  # MACs of the first 3x3 conv alone
    assert s['macs'] > first_conv
    assert model_summary(TransUNet(), (1, 64, 64))['receptive_field'] == math.inf
    m = UNet(**TINY)
    for p in m.encoders.parameters(): p.requires_grad_(False)
    s = model_summary(m, (2, 1, 16, 16))
    assert s['trainable'] == s['params'] - n_params(m.encoders) and s['output_shape'] == (2, 1, 16, 16)
    assert m.training  # the summary restores the mode

def test_summary_table():
    table = summary_table({'unet': UNet(**TINY), 'transunet': tiny('transunet')}, (1, 32, 32))
    assert table.splitlines()[0].split()[:3] == ['model', 'params', 'trainable'] and 'global' in table

def test_defaults_are_light():
    "Defaults train on a CPU in a lesson: under a million parameters and about a GMAC per 128x128 slice."
    for name in NAMES:
        s = model_summary(get_model(name), (1, 128, 128))
        assert s['params'] < 1e6 and s['macs'] < 1.2e9, (name, s)

# --- torch.compile: no graph breaks ------------------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_compile_fullgraph(name):
    """Dynamo traces each forward pass as one graph (fullgraph=True raises on a graph break). The eager backend
    skips code generation, which takes 15-60 s per model on 2 cores; `benchmarks/models.py` runs inductor."""
    torch._dynamo.reset()
    seed_everything(0)
    m, x = tiny(name).eval(), torch.randn(2, 1, 27, 21)
    compiled = torch.compile(m, fullgraph=True, backend='eager')
    with torch.no_grad(): assert torch.allclose(compiled(x), m(x), atol=1e-6)
    if name == 'unetpp':  # the deep-supervision training path too
        m = tiny(name, deep_supervision=True).train()
        outs = torch.compile(m, fullgraph=True, backend='eager')(x)
        assert len(outs) == 2
