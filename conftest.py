"""Test configuration for `pytest` from the repo root: runs `tests/` and every notebook in `nbs/`.

Notebooks are run by nbval, strictly (stored outputs are compared), with three changes that make
nbval and nbdev agree on one marking:

- `nbdev_clean` sets every execution count to None but keeps the outputs. nbval takes a cell with
  no count for "never run" and fails it ("Unrun reference cell has outputs"), or skips its outputs.
  Here a cell's stored outputs are the reference, whatever its count.
- Cells that `nbdev_test` skips (`#| eval: false`, or a test flag from settings.ini such as
  `#| slow`) are skipped by nbval too, so one marking serves both runners.
- Output that varies between runs is marked `# NBVAL_IGNORE_OUTPUT` (nbdev ignores it), and memory
  addresses are sanitized.

The environment is fixed before any kernel starts: smoke mode, one thread per process (parallel
workers on 2 cores that each use 2 torch threads run ~15x slower), no progress bars, a fresh cache folder. The CPU's vector
instructions are capped at AVX2 for torch's own kernels, oneDNN (convolutions) and MKL (matrix
products): summation order follows the vector width, so an AVX-512 machine would otherwise train to
slightly different numbers than an AVX2 machine, and the stored outputs of a training cell would not
be reproducible across the machines CI may run on.
"""
import os, re, tempfile
from configparser import ConfigParser
from pathlib import Path

for k, v in dict(SEGCOURSE_MODE='smoke', SEGCOURSE_TESTING='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
                 OPENBLAS_NUM_THREADS='1', SEGCOURSE_THREADS='1', TQDM_DISABLE='1',
                 PYTHONHASHSEED='0', PYTHONWARNINGS='ignore::DeprecationWarning').items():
    os.environ.setdefault(k, v)
os.environ.setdefault('SEGCOURSE_CACHE', tempfile.mkdtemp(prefix='segcourse-cache-'))  # records of verified data: fresh per test session, never the user's
_cpuinfo = Path('/proc/cpuinfo')
if _cpuinfo.exists() and 'avx2' in _cpuinfo.read_text():  # never ask for instructions the CPU lacks
    for k, v in dict(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2', MKL_CBWR='AVX2').items():
        os.environ.setdefault(k, v)

import pytest

ROOT = Path(__file__).parent
# The real samples: the tests and the notebooks find them with segcourse.data.find_data under the data root. A course
# machine keeps them in a shared folder beside the repository (or names it in SEGCOURSE_SHARED_DATA); where there is
# none, the tests that need them skip with the reason.
_shared = Path(os.environ.get('SEGCOURSE_SHARED_DATA') or ROOT.parent/'shared'/'data')
if _shared.is_dir(): os.environ.setdefault('SEGCOURSE_DATA', str(_shared.resolve()))
_cfg = ConfigParser(delimiters=['=']); _cfg.read(ROOT/'settings.ini')
TEST_FLAGS = _cfg['DEFAULT'].get('tst_flags', '').split()
_skip_re = re.compile(r'^\s*#\s*\|\s*(?:eval\s*:\s*false|(?:%s)\b)' % '|'.join(map(re.escape, TEST_FLAGS or ['notest'])), re.M)
SANITIZE = {r'0x[0-9a-fA-F]{6,}': '0xADDRESS'}

try:
    from nbval.plugin import IPyNbFile
except ImportError:  # nbval is a dev dependency; without it notebooks are not collected
    IPyNbFile = None

def _is_lesson_or_api_nb(path: Path) -> bool:
    rel = path.relative_to(ROOT)
    return (path.suffix == '.ipynb' and rel.parts[0] == 'nbs'
            and not any(p.startswith(('_', '.')) for p in rel.parts))

if IPyNbFile is not None:
    class NbdevNotebook(IPyNbFile):
        "An nbval notebook whose skip markings and reference outputs follow nbdev's conventions."
        def setup(self):
            self.config.option.nbval_current_env = True  # the kernel of this environment, whatever the notebook says
            super().setup()

        def setup_sanitize_files(self):
            super().setup_sanitize_files()
            self.sanitize_patterns.update(SANITIZE)

        def collect(self):
            for item in super().collect():
                cell = item.cell
                if _skip_re.search(cell.source): item.options['skip'] = True
                if cell.outputs and cell.execution_count is None: cell.execution_count = 1
                yield item

    def pytest_collect_file(file_path, parent):
        opt = parent.config.option
        if opt.nbval or opt.nbval_lax: return None  # plain nbval asked for explicitly
        if _is_lesson_or_api_nb(Path(file_path)):
            return NbdevNotebook.from_parent(parent, path=file_path)
