"""Run nbdev's docs pre-processing (`nbdev_proc_nbs` without its Quarto check) on every notebook.

`nbdev_proc_nbs` first installs Quarto when it is missing, which these machines cannot do; the
processing itself (`nbdev.serve.proc_nbs`: front matter, `#| hide`, `show_doc`, links) needs no Quarto.
Fails if any notebook fails to process. The output goes to `_proc/` (ignored by git).
"""
import sys
from pathlib import Path
from nbdev.config import get_config
from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
from nbdev.serve import proc_nbs
from nbdev.doclinks import _build_modidx

cfg = get_config()
refresh_quarto_yml()          # writes nbs/nbdev.yml from settings.ini (tracked; must not change)
_build_modidx()
nbdev_sidebar.__wrapped__()   # no-op with custom_sidebar = True: the sidebar is written by hand
cache = proc_nbs(n_workers=0, force=True)
nbs = sorted(p for p in cfg.nbs_path.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(cfg.nbs_path).parts))
missing = [str(p.relative_to(cfg.nbs_path)) for p in nbs if not (cache/p.relative_to(cfg.nbs_path)).exists()]
if missing: sys.exit(f"docs processing produced no output for: {missing}")
print(f"processed {len(nbs)} notebooks into {cache.name}/")
