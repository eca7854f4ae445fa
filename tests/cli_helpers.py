"""Run the `segcourse` command for the tests: in this process through `segcourse.cli.main` (torch is imported
once, so a call costs what its work costs), or as a real command in a new process, as a user types it."""
import io, os, subprocess, sys
from contextlib import redirect_stderr, redirect_stdout

from segcourse.cli import main

def run_in_process(*args) -> subprocess.CompletedProcess:
    "`segcourse ARGS` run by `main` here: exit code, stdout and stderr; an uncaught exception propagates (fails the test)."
    args = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try: code = main(args)
        except SystemExit as e: code = e.code if isinstance(e.code, int) else int(e.code is not None)  # argparse: --help, errors
    return subprocess.CompletedProcess(['segcourse', *args], code, out.getvalue(), err.getvalue())

def run_command(*args, timeout=300) -> subprocess.CompletedProcess:
    "`python -m segcourse ARGS` in a new process, one thread, no progress bars."
    env = dict(os.environ, OMP_NUM_THREADS='1', SEGCOURSE_THREADS='1', TQDM_DISABLE='1')
    return subprocess.run([sys.executable, '-m', 'segcourse', *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
