"""The command line as a user runs it: `render3d ARGS...` in a process of its own, or under
torchrun as two processes on this machine, with its output captured as text; and what a
terminal shows of such text, progress bars drawn over themselves included."""

import re
import subprocess
import sys

RENDER3D = (sys.executable, "-m", "render3d")
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "render3d")


def cli_command(*args, torchrun: bool = False) -> list[str]:
    """The command line of `render3d ARGS...` (paths and numbers as strings)."""
    return [*(TORCHRUN if torchrun else RENDER3D), *map(str, args)]


def run_cli(*args, torchrun: bool = False, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`render3d ARGS...` run to its end; `kwargs` go to subprocess.run (env, cwd, preexec_fn)."""
    return subprocess.run(cli_command(*args, torchrun=torchrun), capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def start_cli(*args, torchrun: bool = False, **kwargs) -> subprocess.Popen:
    """`render3d ARGS...` started and left running (to be stopped by a signal), its stdout and
    stderr piped, as text unless `text=False`; `kwargs` go to subprocess.Popen."""
    return subprocess.Popen(cli_command(*args, torchrun=torchrun),
                            **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kwargs})


def terminal_rows(text: str) -> list[str]:
    """The rows a terminal shows after `text` is written to it (without trailing spaces):
    carriage returns and tqdm's cursor-up (ESC [A) move the cursor, and what is written after
    them overwrites what was there, as progress bars redraw themselves."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[A|\r|\n|[^\x1b\r\n]+", text):
        if token == "\n":
            row, col = row + 1, 0
            rows += [""] * (row + 1 - len(rows))
        elif token == "\r":
            col = 0
        elif token == "\x1b[A":
            row = max(row - 1, 0)
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [r.rstrip() for r in rows]
