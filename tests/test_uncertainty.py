"Sampling and uncertainty summaries: bad inputs, chunking, multi-class summaries, checkpoint ensembles, ProbUNet."
import copy, math
import pytest, torch
from torch import nn

from segcourse.data import PhantomDataset
from segcourse.models import UNet, model_from_checkpoint, GaussianEncoder, ProbUNet
from segcourse.uncertainty.samplers import (dropout_modules, expected_entropy, image_uncertainty, mc_dropout_mode,
                                   mean_probability, mutual_information, pixel_std, predict_samples, predictive_entropy,
                                   train_ensemble, uncertainty_map, with_annotator)

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def x():
    torch.manual_seed(0)
    return torch.randn(5, 1, 16, 16)

def dropout_net(seed=0, out_channels=1, p=0.3):
    torch.manual_seed(seed)
    return UNet(out_channels=out_channels, features=(4, 8), dropout=p).eval()

@pytest.mark.parametrize('kw, msg', [
    (dict(method='bootstrap'), "method='bootstrap' is not valid"),
    (dict(n=0), "n must be a positive int"),
    (dict(n=2.5), "n must be a positive int"),
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(activation='relu'), "activation='relu' is not valid"),
    (dict(method='ensemble'), "needs a list of models"),
    (dict(method='prob_unet'), "sample(x, n)"),
])
def test_bad_arguments(x, kw, msg):
    with pytest.raises(ValueError) as e: predict_samples(dropout_net(), x, **kw)
    assert msg in str(e.value), str(e.value)

def test_bad_sources(x):
    with pytest.raises(ValueError, match='has none'): predict_samples(UNet(features=(4, 8)), x)
    with pytest.raises(ValueError, match='ensemble is empty'): predict_samples([], x)
    with pytest.raises(ValueError, match="method='ensemble' only"): predict_samples([dropout_net()], x, method='mc_dropout')
    with pytest.raises(ValueError, match='n=3 but the ensemble has 2'): predict_samples([dropout_net(), dropout_net(1)], x, n=3)
    with pytest.raises(ValueError, match='N C H W'): predict_samples(dropout_net(), x[0])
    with pytest.raises(FileNotFoundError): predict_samples(['/nonexistent/last.pt'], x)

def test_mode_restored_after_error(x):
    net = dropout_net().train()
    with pytest.raises(RuntimeError):
        with mc_dropout_mode(net): raise RuntimeError('boom')
    assert all(m.training for m in net.modules())
    net.eval(); predict_samples(net, x, n=2)
    assert not any(m.training for m in net.modules())

@pytest.mark.parametrize('method', ['ensemble', 'tta'])
@pytest.mark.parametrize('batch_size', [1, 3, 7, 100])
def test_chunking_equals_unchunked(x, method, batch_size):
    source = [dropout_net(0), dropout_net(1)] if method == 'ensemble' else dropout_net()
    a = predict_samples(source, x, n=None if method == 'ensemble' else 6, method=method, seed=0, batch_size=1000)
    b = predict_samples(source, x, n=None if method == 'ensemble' else 6, method=method, seed=0, batch_size=batch_size)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)

@pytest.mark.parametrize('batch_size', [1, 4, 5, 13, 1000])
def test_mc_dropout_chunks_without_dropout_effect(x, batch_size):
    "With p=0 dropout layers every sample is the plain prediction, however the batch is cut."
    net = dropout_net(p=0.0)
    net.decoders[0].append(nn.Dropout2d(0.0))  # a dropout layer that drops nothing
    s = predict_samples(net, x, n=4, batch_size=batch_size)
    torch.testing.assert_close(s, torch.sigmoid(net(x)).detach().expand(4, -1, -1, -1, -1), atol=1e-6, rtol=0)

def test_mc_dropout_samples_independent_per_copy(x):
    "Each repeated copy of the batch gets its own dropout mask, so chunked and looped samples agree in spread."
    net = dropout_net(p=0.5)
    s = predict_samples(net, x, n=16, seed=0, batch_size=1000)
    loop = torch.stack([predict_samples(net, x, n=1, seed=k)[0] for k in range(16)])
    assert s.std(0).mean() > 1e-4 and not torch.equal(s[0], s[1])
    assert abs(s.std(0).mean() - loop.std(0).mean()) < 0.5 * loop.std(0).mean()

def test_multiclass_samples_and_summaries(x):
    net = dropout_net(out_channels=3)
    s = predict_samples(net, x, n=4, seed=0)
    assert s.shape == (4, 5, 3, 16, 16)
    torch.testing.assert_close(s.sum(2), torch.ones(4, 5, 16, 16))
    pe, ee, mi = predictive_entropy(s), expected_entropy(s), mutual_information(s)
    assert pe.shape == ee.shape == mi.shape == (5, 1, 16, 16)
    assert (pe <= math.log(3) + 1e-5).all() and (ee >= 0).all() and (mi >= 0).all()
    assert (pe + 1e-5 >= ee).all()  # concavity of entropy
    assert pixel_std(s).shape == mean_probability(s).shape == (5, 3, 16, 16)
    sig = predict_samples(net, x, n=2, seed=0, activation='sigmoid')
    assert not torch.allclose(sig.sum(2), torch.ones(2, 5, 16, 16))

def test_multiclass_hand_values():
    s = torch.tensor([[1., 0., 0.], [0., 1., 0.]]).view(2, 1, 3, 1, 1)  # two certain samples that disagree
    torch.testing.assert_close(predictive_entropy(s).flatten(), torch.tensor([math.log(2)]), atol=1e-5, rtol=0)
    torch.testing.assert_close(expected_entropy(s).flatten(), torch.tensor([0.]), atol=1e-5, rtol=0)
    torch.testing.assert_close(mutual_information(s).flatten(), torch.tensor([math.log(2)]), atol=1e-4, rtol=0)
    # predicted region for several classes: most likely class not 0
    t = torch.tensor([[0.2, 0.9], [0.8, 0.05], [0., 0.05]]).view(1, 1, 3, 1, 2)  # pixel 0: class 1, pixel 1: class 0
    u = image_uncertainty(t, 'entropy', 'predicted')
    torch.testing.assert_close(u, predictive_entropy(t)[0, 0, 0, :1], atol=1e-6, rtol=0)

def test_binary_entropy_safe_at_0_and_1():
    s = torch.tensor([0., 1., 1., 0.]).view(4, 1, 1, 1, 1)
    assert torch.isfinite(predictive_entropy(s)).all() and torch.isfinite(expected_entropy(s)).all()
    assert expected_entropy(s).item() < 1e-5 and abs(predictive_entropy(s).item() - math.log(2)) < 1e-5
    for kind in ('entropy', 'expected_entropy', 'mi', 'std'): assert uncertainty_map(s, kind).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="kind='var'"): uncertainty_map(s, 'var')

def test_checkpoint_ensemble_by_seed_and_bootstrap(tmp_path):
    ds = PhantomDataset(n=8, size=32, annotators=2)
    xs = torch.stack([ds[i][0] for i in range(3)])
    spec = {'name': 'unet', 'kwargs': {'features': (4, 8)}}
    for by in ('seed', 'bootstrap'):
        models, paths = train_ensemble(spec, ds, members=2, by=by, out=tmp_path/by, epochs=1, batch_size=4, progress=False)
        assert all(p.is_file() for p in paths)
        a = predict_samples(models, xs)
        torch.testing.assert_close(a, predict_samples(paths, xs), atol=1e-6, rtol=0)
        torch.testing.assert_close(a, predict_samples(paths, xs, model_fn=lambda: UNet(features=(4, 8))), atol=1e-6, rtol=0)
        assert a.std(0).max() > 0  # other seeds, other members
    with pytest.raises(ValueError, match='do not fit'): model_from_checkpoint(paths[0], model_fn=lambda: UNet(features=(4, 16)))
    _, none = train_ensemble(lambda: UNet(features=(4, 8)), ds, members=1, epochs=1, batch_size=4, progress=False)
    assert none == [None]

def test_ensemble_argument_errors():
    ds = PhantomDataset(n=4, size=32, annotators=2)
    with pytest.raises(ValueError, match='has 2 annotators'): train_ensemble(lambda: UNet(features=(4, 8)), ds, members=3, by='annotator')
    with pytest.raises(ValueError, match='members must be a positive int'): train_ensemble(lambda: UNet(features=(4, 8)), ds, members=0)
    with pytest.raises(TypeError, match='annotators'): with_annotator(torch.utils.data.TensorDataset(torch.zeros(2)), 0)

def test_with_annotator_lidc_arrays():
    from segcourse.data.lidc import LIDCDataset
    import numpy as np
    masks = np.zeros((2, 4, 8, 8), np.uint8)
    for a in range(4): masks[:, a, :a + 1] = 1
    arrays = dict(images=np.zeros((2, 8, 8), np.float32), masks=masks, series_uid=np.array(['s0', 's1']), keys=np.array(['k0', 'k1']))
    ds = LIDCDataset(arrays)
    assert [int(with_annotator(ds, a)[0][1].sum()) for a in range(4)] == [8, 16, 24, 32]
    assert ds.annotator == 'majority'

# ProbUNet
from segcourse.training import fit

@pytest.mark.parametrize('cin, cout, hw', [(1, 1, (20, 28)), (3, 1, (17, 33))])
def test_prob_unet_shapes_and_kl(cin, cout, hw):
    torch.manual_seed(0)
    net = ProbUNet(cin, cout, features=(4, 8, 16), latent_dim=5, prior_features=(4, 8)).eval()
    x = torch.randn(3, cin, *hw)
    y = torch.nn.functional.one_hot(torch.randint(cout, (3, *hw)), cout).permute(0, 3, 1, 2).float() if cout > 1 else (torch.rand(3, 1, *hw) > 0.5).float()
    with torch.no_grad():
        assert net(x).shape == net(x, y).shape == (3, cout, *hw)
        assert net.sample(x, 6).shape == (6, 3, cout, *hw)
        kl = net.kl(x, y)
    assert kl.shape == (3,) and (kl >= 0).all()
    s = predict_samples(net, x, n=4, seed=0)
    assert s.shape == (4, 3, cout, *hw) and (s >= 0).all() and (s <= 1).all()

def test_prob_unet_is_binary():
    "Several output channels are refused: its sampling, KL and training loss are those of one sigmoid channel."
    with pytest.raises(ValueError, match='ProbUNet is binary'): ProbUNet(1, 3, features=(4, 8, 16))

def test_prob_unet_kl_zero_for_equal_gaussians_and_positive_otherwise():
    enc = GaussianEncoder(1, (4,), latent_dim=3)
    d = enc(torch.randn(2, 1, 8, 8))
    assert torch.allclose(torch.distributions.kl_divergence(d, d), torch.zeros(2), atol=1e-6)
    net = ProbUNet(features=(4, 8), prior_features=(4,))
    with torch.no_grad(): net.posterior.to_params.bias[:3] = 1.0  # shift the posterior's means
    x, y = torch.randn(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    assert (net.kl(x, y) > 0.5).all()  # 3 dimensions shifted by ~1: KL ~ 1.5

def test_prob_unet_loss_is_reconstruction_plus_scaled_kl():
    torch.manual_seed(0)
    net = ProbUNet(features=(4, 8), prior_features=(4,), beta=0.0).train()
    x, y = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    torch.manual_seed(1); loss0 = net.training_loss(x, y)
    torch.manual_seed(1); bce = torch.nn.functional.binary_cross_entropy_with_logits(net(x, y), y)
    torch.testing.assert_close(loss0, bce)
    net.beta = 2.0
    torch.manual_seed(1); loss2 = net.training_loss(x, y)
    torch.testing.assert_close(loss2, bce + 2.0 * net.last_kl / 64)

def test_prob_unet_bad_arguments():
    for kw, msg in [(dict(latent_dim=0), 'latent_dim'), (dict(beta=-0.1), 'beta'), (dict(combine_layers=0), 'combine_layers'),
                    (dict(features=(4,)), 'features')]:
        with pytest.raises(ValueError, match=msg): ProbUNet(**kw)
    with pytest.raises(ValueError, match='n must be a positive int'): ProbUNet(features=(4, 8)).sample(torch.zeros(1, 1, 8, 8), 0)

def test_prob_unet_fit_checkpoint_and_samples(tmp_path):
    ds = PhantomDataset(n=16, size=32, target='random')
    make = lambda: ProbUNet(features=(4, 8), prior_features=(4, 8))
    torch.manual_seed(0); net = make()
    hist = fit(net, ds, ds, epochs=1, batch_size=8, loss='bce', out=tmp_path, progress=False, output_prior=0.01)
    assert 'val_dice' in hist[0]
    x = torch.stack([ds[i][0] for i in range(3)])
    a = predict_samples(net, x, n=5, seed=3)
    b = predict_samples(tmp_path/'last.pt', x, n=5, seed=3, model_fn=make)  # one checkpoint: the method follows the model
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='needs dropout layers'): predict_samples(net, x, method='mc_dropout')
    assert predict_samples(net, x, n=2, method='tta').shape == (2, 3, 1, 32, 32)

@pytest.mark.parametrize('out_channels', [1, 3])
def test_tta_non_square_and_multiclass_maps_back(out_channels):
    "TTA on a 16x24 batch: rotated inputs are 24x16, every prediction is mapped back to 16x24."
    torch.manual_seed(0)
    point = nn.Conv2d(1, out_channels, 1)
    x = torch.randn(2, 1, 16, 24)
    s = predict_samples(point, x, n=8, method='tta', intensity=0.)
    assert s.shape == (8, 2, out_channels, 16, 24)
    plain = predict_samples(point, x, n=1, method='tta')[0]
    torch.testing.assert_close(s, plain.expand_as(s), atol=1e-6, rtol=0)
    assert predict_samples(dropout_net(out_channels=out_channels), x, n=8, method='tta').shape == (8, 2, out_channels, 16, 24)
