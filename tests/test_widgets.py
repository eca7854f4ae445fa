"Widgets driven by their callbacks: metrics equal segcourse.metrics.thresholds', selectors change the image shown, static/widget modes, errors."
import numpy as np, pytest, torch

from segcourse.data import LGGDataset, case_volume, write_lgg_case, PhantomDataset
from segcourse.metrics import confusion, from_counts, sweep_thresholds
from segcourse.course.widgets import (TABLE_METRICS, annotator_browser, case_browser, threshold_explorer, uncertainty_viewer,
                               use_static)
from segcourse.uncertainty import entropy

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def toy():
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(3, 1, 16, 16, generator=g) < 0.2).float()
    probs = (0.6 * targets + 0.5 * torch.rand(3, 1, 16, 16, generator=g)).clamp(0, 1)
    return probs, targets

@pytest.mark.parametrize('thresholds', [101, 11, [0.1, 0.25, 0.5, 0.9]])
def test_threshold_table_equals_sweep_and_pooled_counts(toy, thresholds):
    probs, targets = toy
    ex = threshold_explorer(probs, targets, thresholds=thresholds)
    sweep = sweep_thresholds(probs, targets > 0.5, thresholds=thresholds)
    for t in (0.0, 0.12, 0.26, 0.5, 0.93):
        ex.controls['threshold'].value = t
        at = sweep.at(t)
        assert ex.state['threshold'] == at['threshold']
        assert {m: ex.table[m] for m in TABLE_METRICS} == pytest.approx({m: at[m] for m in TABLE_METRICS}, abs=1e-9)
        pooled = confusion(probs >= at['threshold'], targets > 0.5).sum()
        for m in TABLE_METRICS: assert ex.table[m] == pytest.approx(float(from_counts(pooled, m)), abs=1e-6), m

def test_threshold_figure_follows_slider_and_item(toy):
    probs, targets = toy
    ex = threshold_explorer(probs, targets, images=torch.rand(3, 3, 16, 16))
    png = ex.png()
    ex.controls['threshold'].value = 0.2
    assert ex.fig.axes[2].lines[-1].get_xdata()[0] == pytest.approx(0.2) and ex.png() != png
    ex.controls['item'].value = 2
    np.testing.assert_allclose(ex.fig.axes[1].images[0].get_array(), probs[2, 0].numpy())

def test_widget_mode_updates_image_widget(toy):
    probs, targets = toy
    ex = threshold_explorer(probs, targets, static=False)
    assert not ex.static and ex._out.value == ex.png()
    before = ex._out.value
    ex.controls['threshold'].value = 0.9
    assert ex._out.value != before and '0.900' in ex._html.value

def test_use_static_rules(monkeypatch):
    assert use_static(True) and not use_static(False)
    monkeypatch.setenv('SEGCOURSE_STATIC', '0'); assert not use_static()   # explicit env wins over the test default
    monkeypatch.setenv('SEGCOURSE_STATIC', '1'); assert use_static()
    monkeypatch.delenv('SEGCOURSE_STATIC'); assert use_static()             # under pytest
    monkeypatch.delenv('SEGCOURSE_TESTING', raising=False); monkeypatch.delenv('PYTEST_CURRENT_TEST', raising=False)
    assert use_static()                                                     # no Jupyter kernel here

@pytest.mark.parametrize('call, message', [
    (lambda p, t: threshold_explorer(p, t[:2]), "same shape"),
    (lambda p, t: threshold_explorer(p, t, images=torch.rand(2, 1, 16, 16)), "images has 2 items, expected 3"),
    (lambda p, t: threshold_explorer(p, t, threshold=-0.1), "threshold must be in [0, 1]"),
    (lambda p, t: threshold_explorer(p, t, item=3), "item=3 is out of range: 0 to 2"),
    (lambda p, t: threshold_explorer(p[0, 0, 0], t[0, 0, 0]), "probs must have shape B 1 H W"),
    (lambda p, t: threshold_explorer(p, t).update(treshold=0.2), "did you mean 'threshold'"),
])
def test_threshold_errors(toy, call, message):
    with pytest.raises(ValueError, match=None) as e: call(*toy)
    assert message in str(e.value)

@pytest.fixture(scope='module')
def lgg(tmp_path_factory):
    root = tmp_path_factory.mktemp('lgg')/'kaggle_3m'
    rng = np.random.default_rng(0)
    for c, d in (('TCGA_AA_0001_20000101', 4), ('TCGA_BB_0002_20000101', 3)):
        masks = np.zeros((d, 32, 32), np.uint8); masks[1:, 8:16, 8:20] = 1
        write_lgg_case(root, c, rng.integers(0, 255, (d, 32, 32, 3), dtype=np.uint8), masks)
    return LGGDataset(root)

def test_case_browser_lgg_dataset(lgg):
    ex = case_browser(lgg)
    assert ex.state == dict(case='TCGA_AA_0001_20000101', slice=2, channel=0)
    assert ex.controls['channel'].options == (('pre-contrast', 0), ('FLAIR', 1), ('post-contrast', 2))
    shown = lambda: ex.fig.axes[0].images[0].get_array()
    for k in range(4):
        ex.controls['slice'].value = k
        np.testing.assert_allclose(shown(), lgg[k][0][0].numpy())
    ex.controls['channel'].value = 1
    np.testing.assert_allclose(shown(), lgg[3][0][1].numpy())
    ex.controls['case'].value = 'TCGA_BB_0002_20000101'
    assert ex.state['slice'] == 1 and ex.controls['slice'].max == 2 and ex.table['lesion_pixels'] == 96
    with pytest.raises(ValueError, match="slice=3 is out of range: 0 to 2"): ex.update(slice=3)

def test_case_browser_lgg_volumes_with_predictions(lgg):
    vols = {c: case_volume(lgg, c) for c in sorted(set(lgg.case_ids))}
    preds = {c: m[:1] for c, (_, m) in vols.items()}
    ex = case_browser(vols, preds, case='TCGA_AA_0001_20000101', slice=0)
    assert ex.table['dice'] == 1.0 and ex.table['lesion_pixels'] == 0      # empty slice, empty prediction: match
    ex.update(slice=1)
    assert ex.table == dict(case='TCGA_AA_0001_20000101', slice=1, lesion_pixels=96, predicted_pixels=96, dice=1.0)
    with pytest.raises(TypeError, match="give predictions as a dict"): case_browser(vols, torch.zeros(7, 1, 32, 32))

def test_case_browser_phantom_predictions_per_item():
    ph = PhantomDataset(n=8, size=32, slices_per_case=4)
    masks = torch.stack([ph[i][1] for i in range(8)])
    ex = case_browser(ph, predictions=torch.zeros(8, 1, 32, 32))
    assert ex.table['predicted_pixels'] == 0
    with pytest.raises(ValueError, match="predictions has 7 items, expected 8"): case_browser(ph, predictions=masks[:7])
    with pytest.raises(ValueError, match="did you mean 'phantom0_0001'"): ex.update(case='phantom0_001')

def test_annotator_browser_matches_numpy():
    g = torch.Generator().manual_seed(0)
    ann = (torch.rand(3, 4, 12, 12, generator=g) < 0.4).float()
    ex = annotator_browser(torch.rand(3, 1, 12, 12, generator=g), ann)
    for i in range(3):
        ex.controls['item'].value = i
        a = ann[i].numpy() > 0.5
        assert ex.table['union'] == a.any(0).sum() and ex.table['intersection'] == a.all(0).sum()
        assert ex.table['majority'] == (a.sum(0) > 2).sum()
        np.testing.assert_allclose(ex.fig.axes[7].images[0].get_array(), a.mean(0))
    with pytest.raises(ValueError, match="at least 2 annotators"): annotator_browser(torch.rand(1, 1, 4, 4), ann[:1, :1, :4, :4])

def test_uncertainty_viewer_properties():
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(6, 2, 1, 8, 8, generator=g)
    ex = uncertainty_viewer(samples)
    ent, mi = (ex.fig.axes[k].images[0].get_array() for k in (1, 2))
    np.testing.assert_allclose(ent, entropy(samples[:, :1].mean(0))[0, 0].numpy(), atol=1e-5)
    assert (mi >= -1e-6).all() and (mi <= ent + 1e-6).all()
    same = uncertainty_viewer(samples[:1].expand(5, -1, -1, -1, -1).clone())
    assert same.table['max_mutual_information'] == pytest.approx(0, abs=1e-5)
    ex.controls['item'].value = 1
    np.testing.assert_allclose(ex.fig.axes[0].images[0].get_array(), samples[:, 1, 0].mean(0).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="apply torch.sigmoid"): uncertainty_viewer(samples * 4 - 2)
