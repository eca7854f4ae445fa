"Where the tests find the real samples: `segcourse.data.find_data` under the data root, which conftest.py points at the shared folder."
import contextlib, io
from pathlib import Path

import pytest

from segcourse.data import find_data

def sample(name:str) -> Path|None:
    "The path of data set `name` (a `kaggle_3m` folder or a file), or None where it is not found."
    with contextlib.redirect_stdout(io.StringIO()): arg = find_data(name)
    return None if arg is None else Path(arg.partition(':')[2])

def needs(name:str):
    "Skip a test, with the reason, where data set `name` is not under the data root."
    return pytest.mark.skipif(sample(name) is None, reason=f"{name} not found under the data root (set SEGCOURSE_DATA to the folder that holds it)")
