"Tests of patient-level splits: no leakage for any seed, shares, stratification, determinism, errors."
import numpy as np
import pytest

from segcourse.data.splits import (case_has_lesion, check_no_leakage, split_by_case, split_by_item, split_cases,
                              split_report, subsets)


class Fake:
    "A dataset of `n_cases` cases with varying slice counts; odd cases have lesions."
    def __init__(self, n_cases=40, seed=0):
        rng = np.random.default_rng(seed)
        self.case_ids = [f'c{c:02d}' for c in range(n_cases) for _ in range(rng.integers(1, 6))]
        first = {c: self.case_ids.index(c) for c in set(self.case_ids)}
        self.fg = [0.01 * (int(c[1:]) % 2) * (first[c] == k) for k, c in enumerate(self.case_ids)]  # odd cases: one lesion slice
    def __len__(self): return len(self.case_ids)
    def item_info(self, i): return dict(case_id=self.case_ids[i], foreground_fraction=self.fg[i])


@pytest.mark.parametrize('seed', range(20))
def test_no_case_in_two_splits_and_nothing_lost(seed):
    ds = Fake(seed=seed)
    s = split_by_case(ds, seed=seed, stratify='lesion')
    check_no_leakage(ds, s)
    assert sorted(sum(s.values(), [])) == list(range(len(ds)))
    counts = [len(v) for v in split_cases(ds, s).values()]  # 70/15/15 of 40 cases, rounded per stratum
    assert sum(counts) == 40 and abs(counts[0] - 28) <= 1 and all(abs(c - 6) <= 1 for c in counts[1:])
    assert [len(v) for v in split_cases(ds, split_by_case(ds, seed=seed)).values()] == [28, 6, 6]


def test_deterministic_and_seed_dependent():
    ds = Fake()
    assert split_by_case(ds, seed=3) == split_by_case(ds, seed=3)
    assert split_by_case(ds, seed=3) != split_by_case(ds, seed=4)
    # order of items does not change which case goes where
    ids = ds.case_ids
    perm = np.random.default_rng(0).permutation(len(ids))
    a = split_cases(ids, split_by_case(ids, seed=1))
    b = split_cases([ids[i] for i in perm], split_by_case([ids[i] for i in perm], seed=1))
    assert a == b


def test_stratified_by_lesion():
    ds = Fake(n_cases=40)
    lesion = case_has_lesion(ds)
    assert sum(lesion.values()) == 20
    s = split_cases(ds, split_by_case(ds, seed=0, stratify='lesion'))
    shares = {k: np.mean([lesion[c] for c in v]) for k, v in s.items()}
    overall = np.mean(list(lesion.values()))
    assert overall == 0.5 and all(abs(v - overall) < 0.1 for v in shares.values())


def test_two_way_and_dict_fractions():
    ids = [str(i) for i in range(10)]
    s = split_by_case(ids, (0.8, 0.2))
    assert list(s) == ['train', 'val'] and [len(v) for v in s.values()] == [8, 2]
    s = split_by_case(ids, {'fit': 0.5, 'calib': 0.3, 'hold': 0.2})
    assert [len(v) for v in s.values()] == [5, 3, 2]


def test_slice_level_split_leaks():
    ds = Fake()
    with pytest.raises(ValueError, match="more than one split"):
        check_no_leakage(ds, split_by_item(ds, seed=0))


def test_report_and_subsets():
    ids = ['a', 'a', 'b', 'b']
    class D:
        case_ids = ids
        def __len__(self): return 4
        def __getitem__(self, i): return i
        def item_info(self, i): return dict(case_id=ids[i], foreground_fraction=[0., 0.5, 0., 0.][i])
    s = {'train': [0, 1], 'val': [2, 3]}
    r = split_report(D(), s)
    assert r['train'] == dict(cases=1, items=2, lesion_items=0.5, foreground_fraction=0.25)
    assert r['val']['lesion_items'] == 0
    assert repr(r).splitlines()[1].split() == ['train', '1', '2', '50.0%', '25.00%']
    assert [x for x in subsets(D(), s)['val']] == [2, 3]


def test_errors():
    with pytest.raises(ValueError, match="must be non-negative and sum to 1"): split_by_case(['a'], (0.5, 0.6))
    with pytest.raises(ValueError, match="must have 2 .* or 3"): split_by_case(['a'], (1.,))
    with pytest.raises(ValueError, match="stratify='lesions' is not valid"): split_by_case(Fake(), stratify='lesions')
    with pytest.raises(ValueError, match=r"stratify has no label for cases \['b'\]"): split_by_case(['a', 'b'], stratify={'a': 1})
    with pytest.raises(TypeError, match="expected a dataset with case_ids or a list of case ids"): split_by_case(3)
