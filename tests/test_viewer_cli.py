"""`render3d view` from the command line: bad arguments and unreadable targets are named
before anything is served; the default target (the shipped demo checkpoint) is served on the
asked port, with the URL and the SSH tunnel command printed, until Ctrl-C (a training run
is followed, and says so); and the console
lines for loopback and network addresses."""

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from _cli import run_cli
from _gan import add_run_checkpoint, diverged_generator

from render3d_viewer.app import connect_lines, is_loopback


def view(*args, timeout=120):
    return run_cli("view", *args, timeout=timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "render3d view: --port expected a port number in 1..65535, got 0"),
    (["--resolution", "8"], "render3d view: --resolution expected pixels in 32..1024, got 8"),
    # the page's slider stops at 32 and 1024: a start outside it left every browser's page blank
    (["--resolution", "2048"], "render3d view: --resolution expected pixels in 32..1024, got 2048"),
    (["nowhere"], "render3d view: TARGET expected a scene name"),
    # an address that does not resolve, or one of another machine: viser tried port after port forever
    (["--host", "999.1.1.1"], "render3d view: --host expected a name or address of this "
                              "machine, got '999.1.1.1', which does not resolve"),
    (["--host", "192.0.2.1"], "render3d view: --host expected a name or address of this "
                              "machine, got '192.0.2.1' (192.0.2.1), which it cannot listen on"),
])
def test_bad_arguments_are_named(args, message):
    result = view(*args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_without_viser_it_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    from render3d.cli.main import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "viser" else find_spec(name, *a))
    assert main(["view", "--resolution", "8"]) == 2   # refused after the check: a failing test cannot serve
    assert capsys.readouterr().err.strip() == ("render3d view: the viewer needs viser (No module named 'viser'); "
                                               "install it with: pip install 'render3d[viewer]'")


def test_unreadable_generator_file_is_named(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    result = view(str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"render3d view: TARGET expected a render3d generator file (safetensors), got "
                                    f"{bad}, which safetensors cannot read"), result.stderr


def test_a_diverged_generator_is_named_before_anything_is_served(tmp_path):
    diverged = diverged_generator(tmp_path / "diverged.safetensors")
    result = view(str(diverged), "--port", str(free_port()))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"render3d view: TARGET expected a generator whose densities are finite, got "
                                     f"{diverged}, whose density at the centre of seed 0's subject is nan (did its "
                                     f"training diverge?)")


@pytest.mark.parametrize("target", [None, "run"])
def test_default_target_is_served_until_ctrl_c(target, tmp_path):
    """The shipped demo checkpoint by default; a training run is followed, and says so."""
    port = free_port()
    run = tmp_path / "run"
    if target == "run":
        add_run_checkpoint(run, 4)
    # -X faulthandler: SIGABRT makes it print every thread's stack, should Ctrl-C not stop it.
    process = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "render3d", "view", "--port", str(port),
                                *([str(run)] if target else [])],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, process.kill)  # a server that never says where it is fails, not hangs
    watchdog.start()
    try:
        lines = iter(process.stdout.readline, "")  # viser's own banner comes first
        url = next(line for line in lines if line.startswith("render3d view:"))  # once the server listens
        assert url.strip() == f"render3d view: open http://localhost:{port} in a browser"
        assert f"ssh -L {port}:localhost:{port} " in next(lines)
        if target == "run":
            assert next(lines).strip() == (f"render3d view: following the run {run}: showing run_step-0000004, and "
                                           f"each newer checkpoint as training writes it")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            out, err = process.communicate(timeout=30)
            pytest.fail(f"render3d view still ran 30 s after Ctrl-C\nstdout:\n{out[-3000:]}\n"
                        f"stderr (its threads' stacks):\n{err[-8000:]}")
        assert process.returncode == 0 and "render3d view: stopped" in out
        assert "following" not in out               # said once, for a run only
        assert "Traceback" not in err
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()


def test_console_lines_name_the_url_and_the_tunnel():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    local = connect_lines("127.0.0.1", 8080)
    assert local[0] == "render3d view: open http://localhost:8080 in a browser"
    assert "ssh -L 8080:localhost:8080 " in local[1] and local[1].endswith("then open http://localhost:8080")
    assert connect_lines("10.0.0.7", 9000)[0] == "render3d view: open http://10.0.0.7:9000 in a browser"
    assert socket.gethostname() in connect_lines("0.0.0.0", 9000)[0]
    # short and named forms of loopback are loopback (they drew a warning that anyone could see the model)
    assert is_loopback("127.1") and not is_loopback("") and not is_loopback("no-such-host.invalid")
    assert connect_lines("fd00::2", 9000)[0] == "render3d view: open http://[fd00::2]:9000 in a browser"


def test_the_port_is_checked_and_a_free_one_found_below_65536():
    """viser moves on from a taken port, past 65535 too, where it hung with an OverflowError in
    a thread; a port that is no port was taken as one (True as port 1)."""
    from render3d_viewer.app import free_port as first_free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert first_free_port("f", "127.0.0.1", port) > port
    for bad in (0, 65536, -1, True, 8080.5, "8080"):
        with pytest.raises(ValueError, match=re.escape(f"f: argument 'port' expected a port number in 1..65535, "
                                                       f"got {bad!r}")):
            first_free_port("f", "127.0.0.1", bad)
    with socket.socket() as top:
        try:
            top.bind(("127.0.0.1", 65535))
        except OSError:
            pytest.skip("port 65535 is in use on this machine")
        top.listen()
        with pytest.raises(ValueError, match="f: argument 'port' expected a port with a free one at or above it, "
                                             "got 65535: none from 65535 to 65535 is free on 127.0.0.1"):
            first_free_port("f", "127.0.0.1", 65535)


@pytest.mark.parametrize("kwargs, message", [
    ({"resolution": True}, "argument 'resolution' expected pixels in 32..1024, got True"),
    ({"resolution": 64.0}, "argument 'resolution' expected pixels in 32..1024, got 64.0"),
    ({"rest_seconds": True}, "argument 'rest_seconds' expected a finite number >= 0, got True"),  # was 1 s
    ({"rest_seconds": float("inf")}, "argument 'rest_seconds' expected a finite number >= 0, got inf"),
    ({"follow_seconds": 0}, "argument 'follow_seconds' expected a finite number > 0, got 0"),   # a busy loop
])
def test_the_viewer_names_settings_that_are_not_numbers_before_serving(kwargs, message):
    pytest.importorskip("viser")
    from render3d_viewer.app import Viewer
    from render3d_viewer.sources import open_source

    with pytest.raises(ValueError, match=re.escape(f"Viewer: {message}")):
        Viewer(open_source("sphere"), host="127.0.0.1", port=free_port(), **kwargs)
