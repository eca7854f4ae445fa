"""Check that the environment holds the versions pinned in .ci/lowest-py311.txt (run by .ci/lowest_check.sh), and
print them with torch's."""
import sys
from importlib.metadata import version
from pathlib import Path

pins = dict(line.split('==') for line in (Path(__file__).parent/'lowest-py311.txt').read_text().split('\n') if line and not line.startswith('#'))
wrong = {name: (pin, version(name)) for name, pin in pins.items() if version(name) != pin}
if wrong: sys.exit(f"not the lowest versions: {wrong} (name: (pinned, installed))")
print('lowest versions:', ', '.join(f'{n} {v}' for n, v in pins.items()), '| torch', version('torch'))
