"""Running code as if the disk were full: a file-size limit (RLIMIT_FSIZE) on a child process,
which fails writes past it with EFBIG as a full disk fails them with ENOSPC, without root."""

import resource
import subprocess
import sys


def size_limit(limit: int):
    """A `preexec_fn` for `subprocess.run`: the child's files may not pass `limit` bytes."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def oserror_under_a_size_limit(call: str, imports: str, limit: int = 2000) -> list[str]:
    """[errno, filename] of the OSError that `call` (after `imports`) raises in a process whose
    files may not pass `limit` bytes; [] if none."""
    code = (f"import resource\n{imports}\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            f"try:\n    {call}\n"
            "except OSError as error:\n    print(error.errno, error.filename)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()
