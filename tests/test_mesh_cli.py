"""`render3d export-mesh`, `preview-mesh` and `render` as a user runs them: the files, the
one-line summary, and failures before any work."""

import re

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh
from _cli import run_cli, start_cli
from _gan import add_run_checkpoint, collapsed_generator, diverged_generator
from _storage import size_limit


def run(*args, timeout=300):
    return run_cli(*args, timeout=timeout)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "torus.obj"
    result = run("export-mesh", "--scene", "torus", "--resolution", "40", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_export_mesh_writes_the_file_and_says_what_it_wrote(exported):
    out, result = exported
    summary = re.fullmatch(
        rf"render3d export-mesh: wrote {re.escape(str(out.resolve()))} "
        rf"\+ {re.escape(str(out.with_suffix('.mtl').resolve()))}: "
        r"([\d,]+) vertices, ([\d,]+) faces, watertight; level [\d.]+ \(auto\); [\d.]+ s\n", result.stdout)
    assert summary, result.stdout
    mesh = trimesh.load(out, process=False)
    assert (len(mesh.vertices), len(mesh.faces)) == tuple(int(n.replace(",", "")) for n in summary.groups())
    assert "field" in result.stderr  # the progress bar


def test_preview_mesh_writes_a_grid_and_a_turntable(exported, tmp_path):
    mesh, _ = exported
    result = run("preview-mesh", str(mesh), "--out", str(tmp_path), "--size", "32", "--views", "2", "--frames", "3",
                 "--axes")
    assert result.returncode == 0, result.stderr
    grid, video = tmp_path / "torus_views.png", tmp_path / "torus_turntable.mp4"
    assert result.stdout.startswith(f"render3d preview-mesh: {mesh.resolve()}: ")
    assert "faces, watertight; wrote" in result.stdout
    assert str(grid.resolve()) in result.stdout and str(video.resolve()) in result.stdout
    assert iio.imread(grid).shape == (2 + 3 * 34, 2 + 2 * 34, 3)  # rows: colour, depth, normals
    frames = iio.imread(video)
    assert frames.shape == (3, 32, 32, 3) and frames.std() > 10


def test_render_writes_grid_video_and_depth(tmp_path):
    result = run("render", "grid", "video", "depth", "--scene", "sphere", "--out", str(tmp_path), "--size", "24",
                 "--views", "2", "--video-size", "16", "--frames", "3", "--gif")
    assert result.returncode == 0, result.stderr
    names = ["views.png", "depth.npz", "depth.png", "orbit.gif"]
    assert result.stdout.startswith("render3d render: scene sphere: wrote ")
    for name in names:
        assert str((tmp_path / name).resolve()) in result.stdout
    assert iio.imread(tmp_path / "views.png").shape == (2 + 4 * 26, 2 + 2 * 26, 3)
    assert iio.imread(tmp_path / "orbit.gif").shape[:3] == (3, 16, 16)
    depth = np.load(tmp_path / "depth.npz")
    assert depth["depth"].shape == (2, 24, 24) and depth["cam2world"].shape == (2, 4, 4)
    assert depth["normals"].shape == (2, 3, 24, 24) and depth["intrinsics"].shape == (2, 3, 3)
    # the depth at the centre of a view is the distance to the sphere's near side
    distance = np.linalg.norm(depth["cam2world"][:, :3, 3], axis=1)
    assert np.allclose(depth["depth"][:, 12, 12], distance - 0.5, atol=0.05)


@pytest.mark.parametrize("command", [
    ["export-mesh", "--scene", "sphere", "--out", "{blocker}/sub/mesh.glb"],
    ["render", "grid", "--scene", "sphere", "--out", "{blocker}/sub"],
    ["preview-mesh", "{mesh}", "--out", "{blocker}/sub"],
])
def test_unwritable_output_fails_before_any_work(command, exported, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = [a.format(blocker=blocker, mesh=exported[0]) for a in command]
    result = run(*args, timeout=120)
    assert result.returncode == 2
    assert f"render3d {command[0]}:" in result.stderr and "writ" in result.stderr
    assert "%|" not in result.stderr  # no progress bar: nothing was computed
    assert list(tmp_path.iterdir()) == [blocker]


def test_a_write_that_fails_writes_neither_the_obj_nor_its_mtl(tmp_path):
    """A file-size limit (as a full disk) while writing an OBJ: one line naming the file, exit
    status 1, and no MTL without its OBJ (the MTL was written first and left behind, after a
    traceback)."""
    out = tmp_path / "sphere.obj"
    result = run_cli("export-mesh", "--scene", "sphere", "--resolution", "32", "--out", out, timeout=120,
                     preexec_fn=size_limit(4096))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (f"render3d export-mesh: cannot write {out}: File too large; free space "
                                              "or write elsewhere")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, message", [
    (["render", "video", "--scene", "sphere", "--video-size", "1"], "--video-size expected at least 2 pixels, got 1"),
    (["preview-mesh", "{mesh}", "--size", "1"], "--size expected at least 2 pixels, got 1"),
    (["export-mesh", "--scene", "sphere", "--level", "nan"], "argument --level: expected 'auto' or a finite number, "
     "got 'nan'"),
    (["render", "--checkpoint", "{checkpoint}", "--truncation", "nan"],
     "argument --truncation: expected a finite number, got 'nan'"),
    # an MP4 at 1000 fps had a frame rate of 0; browsers play a GIF above 50 fps at 10
    (["render", "video", "--scene", "sphere", "--fps", "1000"], "--fps expected a frame rate in (0, 240] for MP4, "
     "got 1000"),
    (["preview-mesh", "{mesh}", "--format", "gif", "--fps", "60"], "--fps expected a frame rate in (0, 50] for GIF, "
     "got 60"),
])
def test_numbers_that_cannot_work_are_refused_before_any_work(command, message, exported, tmp_path):
    """A 1 px video made ffmpeg log an error while the command said it wrote the file; a NaN
    truncation ended in a traceback about NaN densities."""
    from render3d import DEMO_CHECKPOINT

    args = [a.format(mesh=exported[0], checkpoint=DEMO_CHECKPOINT) for a in command]
    result = run(*args, "--out", str(tmp_path / ("x.glb" if command[0] == "export-mesh" else "out")), timeout=120)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "%|" not in result.stderr and list(tmp_path.iterdir()) in ([], [tmp_path / "out"])


@pytest.mark.parametrize("command, message", [
    (["render", "--checkpoint", "{checkpoint}", "--size", "512"],
     "render3d render: --size applies to scenes only, not to --checkpoint"),      # a generator renders at its size
    (["render", "--scene", "torus", "--seeds", "0-3", "--truncation", "0.5"],
     "render3d render: --seeds, --truncation apply to --checkpoint only, not to scenes"),
    (["render", "--scene", "torus", "--checkpoint", "{checkpoint}"],
     "render3d render: --scene and --checkpoint expected one of them, got both"),
    (["export-mesh", "--scene", "torus", "--seed", "3"],
     "render3d export-mesh: --seed applies to --checkpoint only, not to scenes"),
])
def test_options_of_the_other_source_are_refused_not_ignored(command, message, tmp_path, capsys):
    from render3d import DEMO_CHECKPOINT
    from render3d.cli.main import main

    out = tmp_path / ("x.glb" if command[0] == "export-mesh" else "out")
    assert main([a.format(checkpoint=DEMO_CHECKPOINT) for a in command] + ["--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not out.exists()


@pytest.mark.parametrize("command, message", [
    (["export-mesh", "--scene", "torus", "--no-clean", "--smooth", "5", "--target-faces", "100"],
     "render3d export-mesh: --smooth, --target-faces apply to cleaning, not to --no-clean"),  # were ignored
    (["export-mesh", "--checkpoint", "{checkpoint}", "--seed", str(2 ** 64)],
     f"render3d export-mesh: --seed expected an int in 0..2**64-1, got {2 ** 64}"),     # were torch's overflow
    (["render", "--checkpoint", "{checkpoint}", "--impl", "torch"],
     "render3d render: --impl applies to scenes only, not to --checkpoint"),                # was ignored
    (["render", "--checkpoint", "{checkpoint}", "--seeds", f"0,{2 ** 64}"],
     f"render3d render: --seeds expected ints in 0..2**64-1 like 0-3 or 1,5,7, got '0,{2 ** 64}'"),
    (["render", "--checkpoint", "{checkpoint}", "--truncation", "1e300"],                     # were NaN images
     "render3d render: --truncation expected a number small enough for w_avg + psi (w - w_avg) to stay finite "
     "in torch.float32, got 1e+300"),
    (["export-mesh", "--checkpoint", "{checkpoint}", "--truncation=-1e300"],
     "render3d export-mesh: --truncation expected a number small enough for w_avg + psi (w - w_avg) to stay "
     "finite in torch.float32, got -1e+300"),
    # w finite, densities NaN: a traceback from deep in the render, after the folder was made (w near
    # float32's limit: below it, the demodulated layers keep the densities finite)
    (["render", "--checkpoint", "{checkpoint}", "--seeds", "5,7", "--truncation", "1e38"],
     "render3d render: --truncation expected a number small enough for the densities to stay finite, got 1e+38, "
     "which makes seed 5's density at its centre nan"),
    (["export-mesh", "--checkpoint", "{checkpoint}", "--truncation=-1e38"],
     "render3d export-mesh: --truncation expected a number small enough for the densities to stay finite, "
     "got -1e+38, which makes seed 0's density at its centre nan"),
    (["demo", "--checkpoint", "{checkpoint}", "--truncation", "1e38"],
     "render3d demo: --truncation expected a number small enough for the densities to stay finite, got 1e+38, "
     "which makes seed 0's density at its centre nan"),
    (["demo", "--checkpoint", "{checkpoint}", "--truncation", "1e300"],        # a traceback after the folder was made
     "render3d demo: --truncation expected a number small enough for w_avg + psi (w - w_avg) to stay finite "
     "in torch.float32, got 1e+300"),
])
def test_settings_that_cannot_apply_are_refused(command, message, tmp_path, capsys):
    test_options_of_the_other_source_are_refused_not_ignored(command, message, tmp_path, capsys)


def test_a_generator_whose_densities_are_nan_is_named_not_its_truncation(tmp_path, capsys):
    """A diverged generator (NaN weights in its density head) went as far as the render, a
    traceback naming `render3d.volume.composite`'s argument 'densities'. At a truncation
    that would be fine, the message names the checkpoint, not --truncation."""
    from render3d.cli.main import main

    diverged = diverged_generator(tmp_path / "diverged.safetensors")
    for command, out in (("render", "out"), ("export-mesh", "out/x.glb"), ("demo", "out")):
        for truncation in ("1", "0.5"):
            assert main([command, "--checkpoint", str(diverged), "--truncation", truncation,
                         "--out", str(tmp_path / out)]) == 2
            assert capsys.readouterr().err.strip() == (
                f"render3d {command}: --checkpoint expected a generator whose densities are finite, got one whose "
                f"density at the centre of seed 0's subject is nan (did its training diverge?)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diverged.safetensors"]


def test_a_subject_without_a_surface_is_named_and_the_demo_writes_the_rest(tmp_path, capsys):
    """A collapsed generator (density 0 everywhere) was a traceback from marching cubes, in the
    demo after its video and views were written; export-mesh blamed a --level it was not given."""
    from render3d.cli.main import main

    collapsed = collapsed_generator(tmp_path / "collapsed.safetensors")
    assert main(["export-mesh", "--checkpoint", str(collapsed), "--seed", "3", "--resolution", "16",
                 "--out", str(tmp_path / "mesh" / "x.glb")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "render3d export-mesh: seed 3 of --checkpoint has no surface: its density is 0 everywhere inside the "
        "generator's box (an empty subject; did its training collapse?)")
    assert main(["export-mesh", "--checkpoint", str(collapsed), "--level", "2", "--resolution", "16",
                 "--out", str(tmp_path / "mesh" / "x.glb")]) == 2        # a level given is the one named
    assert "--level expected a value strictly between the field's minimum and maximum there, [0, 0], got 2" in \
        capsys.readouterr().err
    assert not (tmp_path / "mesh" / "x.glb").exists()
    assert main(["demo", "--checkpoint", str(collapsed), "--seeds", "0-1", "--frames", "2", "--views", "1",
                 "--mesh-resolution", "8", "--out", str(tmp_path / "demo")]) == 0
    said = capsys.readouterr()
    for seed in (0, 1):
        assert (f"render3d demo: seed {seed} has no surface, no mesh written: its density is 0 everywhere inside the "
                f"generator's box") in said.err
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["orbit.mp4", "views.png"]
    assert "seed0.glb" not in said.out and "views.png" in said.out


def test_a_checkpoint_that_is_not_there_is_named_before_folders_are_made(tmp_path, capsys):
    """render and export-mesh made their output folder, then found no checkpoint; the message
    said '--checkpoint load_generator: argument 'path' expected a generator.safetensors file'."""
    from render3d.cli.main import main

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    for given, found in (("nope", "which does not exist"), ("run", "a run folder without a checkpoint yet "
                                                                   "(training writes the first after "
                                                                   "checkpoint_every steps, and at Ctrl-C)")):
        for command, out in (("render", "out"), ("export-mesh", "out/x.glb")):
            assert main([command, "--checkpoint", str(tmp_path / given), "--out", str(tmp_path / out)]) == 2
            assert capsys.readouterr().err.strip() == (
                f"render3d {command}: --checkpoint expected a generator file (.safetensors), a checkpoint folder or a "
                f"run folder with checkpoints, got {tmp_path / given}, {found}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_damaged_checkpoint_is_named_before_folders_are_made(tmp_path, capsys):
    """A generator file that is there but cut short was read only after render and export-mesh
    had made their output folders, which the failed run left behind (demo: with a traceback)."""
    from render3d import DEMO_CHECKPOINT
    from render3d.cli.main import main

    damaged = tmp_path / "generator.safetensors"
    damaged.write_bytes(DEMO_CHECKPOINT.read_bytes()[:300])
    for command, out in (("render", "out"), ("export-mesh", "out/x.glb"), ("demo", "out")):   # demo: a traceback
        assert main([command, "--checkpoint", str(damaged), "--out", str(tmp_path / out)]) == 2
        assert capsys.readouterr().err.strip().startswith(
            f"render3d {command}: --checkpoint expected a render3d generator file (safetensors), got {damaged}, "
            f"which safetensors cannot read (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.safetensors"]


def test_axes_of_a_mesh_at_the_origin(tmp_path):
    """A mesh whose every vertex is at the origin got axes of length 0, a traceback."""
    trimesh.Trimesh(np.zeros((3, 3)), [[0, 1, 2]], process=False).export(tmp_path / "point.ply")
    result = run("preview-mesh", str(tmp_path / "point.ply"), "--axes", "--size", "16", "--views", "1", "--frames",
                 "2", "--format", "gif", timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "point_views.png").is_file() and (tmp_path / "point_turntable.gif").is_file()


def test_ctrl_c_is_one_line_not_a_traceback(tmp_path):
    import os
    import signal

    process = start_cli("render", "grid", "--scene", "torus", "--size", "256", "--views", "64", "--impl", "torch",
                        "--out", tmp_path, text=False)
    try:
        seen = b""
        while b"%|" not in seen:                       # the progress bar: rendering has begun
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, f"render3d render ended before rendering: {seen.decode()}"
            seen += chunk
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert (seen + err).decode().rstrip().endswith("render3d render: interrupted")
    assert b"Traceback" not in seen + err


def test_bad_names_list_the_valid_ones(tmp_path):
    result = run("export-mesh", "--scene", "teapot", "--out", str(tmp_path / "x.glb"), timeout=120)
    assert result.returncode == 2
    assert "--scene expected one of 'demo', 'sphere', 'torus', 'gyroid', 'box', got 'teapot'" in result.stderr
    result = run("render", "pictures", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 2 and "OUTPUT expected any of 'grid', 'video', 'depth', got 'pictures'" in result.stderr
    result = run("export-mesh", "--scene", "sphere", "--out", str(tmp_path / "x.stl"), timeout=120)
    assert result.returncode == 2 and "'--out' expected a mesh file ending in .glb, .obj, .ply" in result.stderr


def test_a_checkpoint_given_where_the_command_wants_something_else_is_pointed_at_checkpoint(tmp_path, capsys):
    """`render3d render RUN` (as `eval generator RUN` and `view RUN` take it) said only that
    'RUN' is not an output; `render3d view --checkpoint RUN` only that --checkpoint is unknown."""
    from render3d import DEMO_CHECKPOINT
    from render3d.cli.main import main

    run_dir = tmp_path / "run"
    add_run_checkpoint(run_dir, 10)
    (tmp_path / "notes.txt").write_text("")
    for path in (run_dir, DEMO_CHECKPOINT):
        assert main(["render", str(path)]) == 2
        assert capsys.readouterr().err.strip() == (f"render3d render: OUTPUT expected any of 'grid', 'video', "
                                                   f"'depth', got {str(path)!r} ({path} is a trained generator: pass "
                                                   f"it as --checkpoint {path})")
        with pytest.raises(SystemExit) as done:
            main(["export-mesh", str(path)])
        assert done.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (f"render3d export-mesh: error: unrecognized arguments: "
                                                            f"{path} ({path} is a trained generator: pass it as "
                                                            f"--checkpoint {path})")
    for command in (["view"], ["eval", "generator"]):   # and the other way round
        with pytest.raises(SystemExit):
            main([*command, "--checkpoint", str(run_dir), *(["data"] if command[0] == "eval" else [])])
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"render3d {' '.join(command)}: error: unrecognized arguments: --checkpoint (render3d {' '.join(command)} "
            "takes the generator as its first argument, without --checkpoint)")
    for other in (tmp_path / "notes.txt", tmp_path, tmp_path / "nothing"):   # no hint where it would be wrong
        assert main(["render", str(other)]) == 2
        assert capsys.readouterr().err.strip().endswith(f"got {str(other)!r}")
        with pytest.raises(SystemExit):
            main(["export-mesh", str(other)])
        assert capsys.readouterr().err.splitlines()[-1].endswith(f"unrecognized arguments: {other}")


def test_no_surface_is_a_clear_error(tmp_path):
    from render3d import DEMO_CHECKPOINT

    for source in (["--scene", "sphere"], ["--checkpoint", str(DEMO_CHECKPOINT)]):
        result = run("export-mesh", *source, "--level", "500", "--resolution", "16", "--out", str(tmp_path / "x.glb"),
                     timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        # said with the option, not as render3d.mesh.extract_mesh's argument 'level'
        assert re.search(r"^render3d export-mesh: the field has no surface inside bbox: --level expected a value "
                         r"strictly between the field's minimum and maximum there, \[0, [0-9.]+\], got 500$",
                         result.stderr, re.MULTILINE), result.stderr
        assert not (tmp_path / "x.glb").exists()


def test_an_unreadable_mesh_file_is_named_as_the_argument(tmp_path):
    """It said render3d.mesh.load_mesh's argument 'path', after the output folder was made."""
    (tmp_path / "text.ply").write_text("ply\n")
    result = run("preview-mesh", str(tmp_path / "text.ply"), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"render3d preview-mesh: MESH expected a mesh file trimesh can read, got "
                                    f"{tmp_path / 'text.ply'} ("), result.stderr
    assert not (tmp_path / "out").exists()                 # read before the folder is made


def test_sizes_beyond_memory_are_named_not_a_traceback(tmp_path):
    # 10^7 px a side: more bytes than a 47-bit address space, refused even where memory is overcommitted
    # (export-mesh's grid: see test_mesh_extract)
    result = run("render", "grid", "--scene", "sphere", "--size", "10000000", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"render3d render: out of memory \(DefaultCPUAllocator: can't allocate memory: you tried to "
                     r"allocate \d+ bytes.*\); what was asked for needs more memory than this machine has: ask for "
                     r"less", result.stderr), result.stderr


def test_help_shows_examples():
    for command in ("export-mesh", "preview-mesh", "render"):
        result = run(command, "--help", timeout=60)
        assert result.returncode == 0 and "examples:" in result.stdout and f"render3d {command} " in result.stdout


def test_render_names_a_depth_file_it_cannot_write(tmp_path):
    """depth.npz went straight to its name: a full disk (here a file-size limit) named no file and
    left half an archive."""
    out = tmp_path / "out"
    result = run_cli("render", "depth", "--scene", "torus", "--views", "1", "--size", "16", "--out", out,
                     preexec_fn=size_limit(1000))
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (f"render3d render: cannot write {out / 'depth.npz'}: File too large; "
                                              "free space or write elsewhere")
    assert list(out.iterdir()) == []
