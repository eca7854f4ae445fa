"""Write nbs/sidebar.yml: home, the lessons in curriculum order, the instructor guides, then the API reference,
one section per layer of the package from the bottom up (the folders of nbs/api mirror segcourse's subpackages).

settings.ini has `custom_sidebar = True` so that `nbdev_docs` keeps this order (nbdev's own sidebar
would put `api/` before `lessons/`). `python .ci/sidebar.py --check` fails if the file is out of date.
"""
import sys
from pathlib import Path

NBS = Path(__file__).resolve().parents[1]/'nbs'
# The subpackages from the bottom layer up (imports point down this list; tests/test_architecture.py checks it)
LAYERS = ['data', 'models', 'losses', 'metrics', 'inference', 'training', 'evaluation', 'uncertainty', 'robustness', 'course']

def render() -> str:
    def nbs(folder): return sorted(str(p.relative_to(NBS)) for p in (NBS/folder).glob('*.ipynb') if not p.name.startswith('_'))
    lines = ['website:', '  sidebar:', '    contents:', '      - index.ipynb',
             '      - section: Lessons', '        contents:'] + [f'          - {p}' for p in nbs('lessons')]
    lines += ['      - section: Guides', '        contents:'] + [f'          - {p}' for p in nbs('guides')]
    top = nbs('api')
    lines += ['      - section: API reference', '        contents:'] + [f'          - {p}' for p in top if not p.startswith('api/9')]
    for layer in LAYERS:
        lines += [f'          - section: {layer}', '            contents:'] + [f'              - {p}' for p in nbs(f'api/{layer}')]
    lines += [f'          - {p}' for p in top if p.startswith('api/9')]  # the command line, on top of everything
    return '\n'.join(lines) + '\n'

if __name__ == '__main__':
    text = render()
    if '--check' in sys.argv:
        if (NBS/'sidebar.yml').read_text() != text: sys.exit('nbs/sidebar.yml is out of date: run python .ci/sidebar.py')
        print('nbs/sidebar.yml is up to date')
    else: (NBS/'sidebar.yml').write_text(text)
