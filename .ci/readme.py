"""Write README.md from nbs/index.ipynb without Quarto (`nbdev_readme` needs Quarto).

`python .ci/readme.py` writes it; `python .ci/readme.py --check` fails if README.md is out of date.
Markdown cells are copied; code cells become ```python blocks followed by their text output.
"""
import json, re, sys
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def docs_url() -> str:
    "The address of the published docs, from settings.ini (doc_host + doc_baseurl)."
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    return cfg['DEFAULT']['doc_host'].rstrip('/') + cfg['DEFAULT']['doc_baseurl'].rstrip('/')

def absolute_links(text:str) -> str:
    "Relative notebook links (`lessons/01_demo.ipynb`) as the pages of the docs, which is what they are on GitHub and on PyPI."
    def page(m):
        parts = m.group(2).split('/')
        parts[-1] = re.sub(r'^\d+[a-zA-Z0-9]*_', '', parts[-1]).lower()  # nbdev drops the number of a page's name
        return f"]({docs_url()}/{'/'.join(parts)}.html{m.group(3) or ''})"
    return re.sub(r'\]\((?!https?:)((?:\./)?([\w./-]+?)\.ipynb)(#[\w-]+)?\)', page, text)

def render(nb_path: Path = ROOT/'nbs'/'index.ipynb') -> str:
    nb = json.loads(nb_path.read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        if c['cell_type'] == 'markdown': parts.append(absolute_links(src))
        elif c['cell_type'] == 'code' and src and not src.startswith('#|'):
            parts.append(f'```python\n{src}\n```')
            for o in c.get('outputs', []):
                text = o.get('text') or o.get('data', {}).get('text/plain')
                if text: parts.append('    ' + ''.join(text).strip().replace('\n', '\n    '))
    body = '\n\n'.join(parts) + '\n'
    return '<!-- Written from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file. -->\n\n' + body

if __name__ == '__main__':
    text = render()
    if '--check' in sys.argv:
        if (ROOT/'README.md').read_text() != text: sys.exit('README.md is out of date with nbs/index.ipynb: run python .ci/readme.py')
        print('README.md matches nbs/index.ipynb')
    else: (ROOT/'README.md').write_text(text)
