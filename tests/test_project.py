"""Checks on the project itself: notebooks, docs sidebar, README, version, machine paths."""
import json, re, subprocess, sys
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'

def notebooks():
    return sorted(p for p in NBS.rglob('*.ipynb')
                  if not any(s.startswith(('_', '.')) for s in p.relative_to(NBS).parts))

@pytest.mark.parametrize('nb', notebooks(), ids=lambda p: str(p.relative_to(NBS)))
def test_notebook_has_title_summary_and_python3_kernel(nb):
    d = json.loads(nb.read_text())
    assert d['metadata']['kernelspec']['name'] == 'python3', f'{nb.name}: kernelspec must be python3'
    md = [''.join(c['source']) for c in d['cells'] if c['cell_type'] == 'markdown']
    assert md and md[0].lstrip().startswith('# '), f'{nb.name}: the first markdown cell must be a "# Title"'
    assert '\n> ' in md[0] or md[0].count('\n>') or '> ' in md[0], f'{nb.name}: the title needs a "> summary" line'

@pytest.mark.parametrize('nb', notebooks(), ids=lambda p: str(p.relative_to(NBS)))
def test_notebook_has_no_machine_paths_or_huge_outputs(nb):
    text = nb.read_text()
    found = re.findall(r'/(?:root|home/[a-z]+|' + 'wo' + r'rk|tmp/[a-z])/', text)
    assert not found, f'{nb.name} contains machine-specific paths: {sorted(set(found))}'
    assert nb.stat().st_size < 1_500_000, f'{nb.name} is {nb.stat().st_size/1e6:.1f} MB: make its figures smaller'

def test_sidebar_is_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT/'.ci'/'sidebar.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_sidebar_lists_every_notebook():
    side = (NBS/'sidebar.yml').read_text()
    listed = set(re.findall(r'([\w/]+\.ipynb)', side))
    have = {str(p.relative_to(NBS)) for p in notebooks()}
    assert have - listed == set(), f'notebooks missing from nbs/sidebar.yml: {sorted(have - listed)}'
    assert listed - have == set(), f'nbs/sidebar.yml lists notebooks that do not exist: {sorted(listed - have)}'

def test_readme_is_written_from_index():
    r = subprocess.run([sys.executable, str(ROOT/'.ci'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_version_is_defined_once():
    import segcourse
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    assert segcourse.__version__ == cfg['DEFAULT']['version']

def test_runtime_package_does_not_need_nbdev_or_fastcore():
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    reqs = cfg['DEFAULT']['requirements']
    assert 'nbdev' not in reqs and 'fastcore' not in reqs
    for py in (ROOT/'segcourse').glob('*.py'):
        assert not re.search(r'^\s*(from|import)\s+(fastcore|nbdev)\b', py.read_text(), re.M), f'{py.name} imports nbdev/fastcore'

def test_lessons_do_not_need_dev_tools():
    for nb in (NBS/'lessons').glob('*.ipynb'):
        src = '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code')
        assert not re.search(r'^\s*(from|import)\s+(fastcore|nbdev)\b', src, re.M), f'{nb.name}: lessons run with `pip install segcourse` only'

def _mixes_imports_and_code(src: str) -> bool:
    import ast
    try: tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))))
    except SyntaxError: return False
    has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
    has_code = any(isinstance(n, (ast.Expr, ast.Assign)) for n in ast.walk(tree))
    return has_import and has_code

@pytest.mark.parametrize('nb', [p for p in notebooks() if 'api' in p.relative_to(NBS).parts], ids=lambda p: str(p.relative_to(NBS)))
def test_api_import_cells_hold_only_imports(nb):
    "nbdev's docs processing runs every cell with an import: such cells must not also compute or plot."
    bad = []
    for i, c in enumerate(json.loads(nb.read_text())['cells']):
        src = ''.join(c['source'])
        if c['cell_type'] != 'code' or re.search(r'^#\|\s*(export|exporti|exports|eval:\s*false)', src, re.M): continue
        if _mixes_imports_and_code(src): bad.append(i)
    assert not bad, f'{nb.name}: cells {bad} mix imports with other code (nbdev runs them when building docs); move the imports to an import cell'

@pytest.mark.parametrize('nb', notebooks(), ids=lambda p: str(p.relative_to(NBS)))
def test_no_cell_relies_on_semicolon_suppression(nb):
    "nbval runs cells without IPython's history, so a trailing `;` does not hide a value: assign it (`_ = ...`)."
    bad = [i for i, c in enumerate(json.loads(nb.read_text())['cells'])
           if c['cell_type'] == 'code' and ''.join(c['source']).rstrip().endswith(';')]
    assert not bad, f'{nb.name}: cells {bad} end with ";"'

def _settings():
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    return cfg['DEFAULT']

def lessons(): return sorted((NBS/'lessons').glob('*.ipynb'))

def _markdown(nb): return [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'markdown']

@pytest.mark.parametrize('nb', lessons(), ids=lambda p: p.name)
def test_lesson_has_colab_badge_to_itself(nb):
    s = _settings()
    url = f"https://colab.research.google.com/github/{s['user']}/{s['repo']}/blob/{s['branch']}/nbs/lessons/{nb.name}"
    md = _markdown(nb)
    assert len(md) > 1 and url in md[1], f'{nb.name}: the cell after the title needs the "Open in Colab" badge linking {url}'

@pytest.mark.parametrize('nb', lessons(), ids=lambda p: p.name)
def test_lesson_has_objectives_time_summary_and_exercises(nb):
    text = '\n'.join(_markdown(nb))
    for part in ('Learning objectives', '**Time', '## Summary', '## Exercises'):
        assert part in text, f'{nb.name}: no "{part}"'
    code = [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
    assert any('run_mode(' in c for c in code[:4]), f'{nb.name}: the smoke/full switch (run_mode) belongs near the top'
    assert any(c.startswith('#| code-fold: true') for c in code), f'{nb.name}: exercises need a folded solution cell'

def test_changelog_has_a_section_for_the_version():
    version = _settings()['version']
    assert re.search(rf'^## {re.escape(version)}\b', (ROOT/'CHANGELOG.md').read_text(), re.M), f'CHANGELOG.md: no "## {version}" section'

def test_citation_file_does_not_repeat_the_version():
    cff = (ROOT/'CITATION.cff').read_text()
    assert cff.startswith('cff-version:') and 'title:' in cff and 'authors:' in cff
    assert not re.search(r'^version:', cff, re.M), 'the version is defined once, in settings.ini'

@pytest.mark.parametrize('nb', notebooks(), ids=lambda p: str(p.relative_to(NBS)))
def test_figures_have_captions(nb):
    cells = json.loads(nb.read_text())['cells']
    missing = [i for i, c in enumerate(cells) if c['cell_type'] == 'code'
               and any('image/png' in o.get('data', {}) for o in c.get('outputs', []))
               and not ''.join(c['source']).startswith('#| fig-cap:')]
    assert not missing, f'{nb.name}: figure cells without a "#| fig-cap:" first line: {missing}'

@pytest.mark.parametrize('nb', lessons(), ids=lambda p: p.name)
def test_lesson_installs_the_version_it_was_written_for(nb):
    "On Colab the first cell installs segcourse: the version in settings.ini, not whatever is newest."
    code = [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
    pins = re.findall(r'%pip install -q "segcourse==([^"]+)"', '\n'.join(code[:3]))
    assert pins == [_settings()['version']], f'{nb.name}: the install cell must pin segcourse=={_settings()["version"]}, found {pins}'

def test_readme_links_are_absolute():
    "README.md is the front page on GitHub and PyPI: a relative link to a notebook is broken there."
    text = (ROOT/'README.md').read_text()
    relative = re.findall(r'\]\((?!https?://|#)([^)]+)\)', text)
    assert not relative, f'README.md has relative links: {relative}'

def test_runtime_requirements_are_what_the_library_imports():
    "Every top-level package the library imports is a requirement or an optional extra, and no requirement goes unused."
    import ast
    cfg = _settings()
    declared = {re.split(r'[<>=!\[ ]', r)[0].lower().replace('-', '_') for r in cfg['requirements'].split()}
    extras = {re.split(r'[<>=!\[ ]', r)[0].lower().replace('-', '_') for k, v in cfg.items() if k.startswith('extra_') for r in v.split()}
    aliases = {'pil': 'pillow', 'sklearn': 'scikit_learn'}
    stdlib, used = set(sys.stdlib_module_names), set()
    for py in (ROOT/'segcourse').rglob('*.py'):
        for n in ast.walk(ast.parse(py.read_text())):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module] if isinstance(n, ast.ImportFrom) and not n.level and n.module else []
            used |= {aliases.get(m.split('.')[0].lower(), m.split('.')[0].lower()) for m in names}
    used -= stdlib | {'segcourse', '__future__'}
    assert used - declared - extras == set(), f'imported but not declared: {sorted(used - declared - extras)}'
    assert declared - used == set(), f'declared but not imported by the library: {sorted(declared - used)}'

def test_the_lowest_versions_tested_are_inside_the_ranges():
    "`.ci/lowest-py311.txt` (what .ci/lowest_check.sh installs) pins every runtime requirement but torch, each inside its range."
    from packaging.requirements import Requirement
    reqs = {Requirement(r).name.lower(): Requirement(r) for r in _settings()['requirements'].split()}
    pins = dict(l.split('==') for l in (ROOT/'.ci'/'lowest-py311.txt').read_text().split('\n') if l and not l.startswith('#'))
    assert set(pins) == set(reqs) - {'torch'}, f'pinned {sorted(pins)}, required {sorted(reqs)}'
    outside = {n: (v, str(reqs[n].specifier)) for n, v in pins.items() if v not in reqs[n].specifier}
    assert not outside, f'pins outside their ranges: {outside}'
    floors = {n: next(s.version for s in r.specifier if s.operator == '>=') for n, r in reqs.items()}
    assert all(pins[n].split('.')[0] == floors[n].split('.')[0] for n in pins), f'a pin left its floor\'s major version: {pins} vs {floors}'

@pytest.mark.parametrize('extra, package, call', [
    ('kaggle', 'kagglehub', lambda tmp: __import__('segcourse.data.lgg', fromlist=['download_lgg']).download_lgg(tmp)),
    ('tensorboard', 'torch.utils.tensorboard', lambda tmp: __import__('segcourse.training.loop', fromlist=['fit']).fit(
        __import__('segcourse.models', fromlist=['UNet']).UNet(features=(4, 8)), __import__('segcourse.data', fromlist=['PhantomDataset']).PhantomDataset(n=4, size=32),
        epochs=1, batch_size=4, progress=False, tensorboard=True, out=tmp)),
    ('nifti', 'nibabel', lambda tmp: __import__('segcourse.data.nifti', fromlist=['read_volume']).read_volume(tmp/'case.nii.gz')),
])
def test_a_missing_extra_names_itself(extra, package, call, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    if extra == 'kaggle': monkeypatch.setitem(sys.modules, 'kaggle', None)
    with pytest.raises(RuntimeError, match=re.escape(f'segcourse[{extra}]')): call(tmp_path)

@pytest.mark.parametrize('nb', sorted((NBS/'lessons').glob('*.ipynb')), ids=lambda p: p.name)
def test_measured_tables_are_stored_in_the_lessons(nb):
    "nbval compares a cell only where it has stored outputs: a lesson cell that shows a measured study must keep its table, so that a changed measurement fails until the lesson is run again."
    for c in json.loads(nb.read_text())['cells']:
        source = ''.join(c['source'])
        if c['cell_type'] == 'code' and 'measured(' in source and 'import' not in source:
            text = ''.join(''.join(o.get('text', '')) for o in c['outputs'])
            assert 'held-out' in text or 'seeds' in text or 'imbalance' in text, f"{nb.name}: the cell showing measured(...) has no stored table:\n{source}"
