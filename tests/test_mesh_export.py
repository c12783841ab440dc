"""Mesh files read by their real consumers: trimesh, open3d and pymeshlab see the same
vertices, faces and colours in GLB, OBJ and PLY; the GLB is glTF's Y-up, metres."""

import json
import re
import struct

import numpy as np
import pytest
from scipy.spatial import cKDTree

from render3d.mesh import export_mesh, extract_mesh, load_mesh
from render3d.volume import BoxField, TorusField

BOX = ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def mesh():
    field = TorusField()  # rainbow vertex colours: every byte value matters
    return extract_mesh(field.density, BOX, 48, color_fn=field.color)


@pytest.fixture(scope="module")
def files(mesh, tmp_path_factory):
    folder = tmp_path_factory.mktemp("meshes")
    return {fmt: export_mesh(mesh, folder / f"torus.{fmt}") for fmt in ("glb", "obj", "ply")}


def glb_json(path):
    data = path.read_bytes()
    magic, version, _ = struct.unpack("<4sII", data[:12])
    length, kind = struct.unpack("<I4s", data[12:20])
    assert magic == b"glTF" and version == 2 and kind == b"JSON"
    return json.loads(data[20:20 + length])


def rgb(colors):
    return np.asarray(colors)[:, :3].astype(int)


def test_obj_comes_with_its_mtl(files):
    obj, mtl = files["obj"]
    assert mtl.suffix == ".mtl" and mtl.exists()
    text = obj.read_text()
    assert f"mtllib {mtl.name}" in text and "usemtl render3d_vertex_color" in text
    assert "newmtl render3d_vertex_color" in mtl.read_text()


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_trimesh_reads_the_same_mesh(mesh, files, fmt):
    import trimesh

    loaded = trimesh.load(files[fmt][0], process=False)
    if isinstance(loaded, trimesh.Scene):
        (loaded,) = loaded.geometry.values()
    assert (len(loaded.vertices), len(loaded.faces)) == (len(mesh.vertices), len(mesh.faces))
    assert np.abs(loaded.vertices - mesh.vertices).max() < 1e-6
    assert np.array_equal(loaded.faces, mesh.faces)
    ours = load_mesh(files[fmt][0])  # also the preview's reader: colours as ColorVisuals
    assert np.array_equal(rgb(ours.visual.vertex_colors), rgb(mesh.visual.vertex_colors))


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_open3d_reads_the_same_mesh(mesh, files, fmt):
    import open3d as o3d

    loaded = o3d.io.read_triangle_mesh(str(files[fmt][0]))
    vertices = np.asarray(loaded.vertices)
    assert (len(vertices), len(loaded.triangles)) == (len(mesh.vertices), len(mesh.faces))
    # open3d may reorder vertices: match them by position
    distance, index = cKDTree(mesh.vertices).query(vertices)
    assert distance.max() < 1e-6 and len(set(index)) == len(vertices)
    colors = np.round(np.asarray(loaded.vertex_colors) * 255).astype(int)
    assert np.array_equal(colors, rgb(mesh.visual.vertex_colors)[index])
    assert loaded.has_vertex_normals()


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_pymeshlab_reads_the_same_mesh(mesh, files, fmt):
    import pymeshlab

    meshes = pymeshlab.MeshSet()
    meshes.load_new_mesh(str(files[fmt][0]))
    loaded = meshes.current_mesh()
    assert (loaded.vertex_number(), loaded.face_number()) == (len(mesh.vertices), len(mesh.faces))
    distance, index = cKDTree(mesh.vertices).query(loaded.vertex_matrix())
    assert distance.max() < 1e-6
    colors = np.round(loaded.vertex_color_matrix()[:, :3] * 255).astype(int)
    assert np.array_equal(colors, rgb(mesh.visual.vertex_colors)[index])


def test_glb_is_y_up_metres_with_colour_0_and_a_matte_material(tmp_path):
    # a slab high above the origin, thin in y: no axis swap or node transform may move it
    field = BoxField((0.1, 0.6, -0.2), (0.3, 0.1, 0.2))
    mesh = extract_mesh(field.sdf, BOX, 65, field_type="sdf", color_fn=field.color)
    (path,) = export_mesh(mesh, tmp_path / "slab.glb")
    gltf = glb_json(path)
    for node in gltf["nodes"]:
        assert not {"matrix", "rotation", "scale", "translation"} & set(node)
    (primitive,) = gltf["meshes"][0]["primitives"]
    position = gltf["accessors"][primitive["attributes"]["POSITION"]]
    assert np.allclose(position["min"], [-0.2, 0.5, -0.4], atol=0.02)
    assert np.allclose(position["max"], [0.4, 0.7, 0.0], atol=0.02)
    color = gltf["accessors"][primitive["attributes"]["COLOR_0"]]
    assert color["componentType"] == 5121 and color["normalized"] and color["count"] == len(mesh.vertices)
    assert "NORMAL" in primitive["attributes"]
    material = gltf["materials"][primitive["material"]]["pbrMetallicRoughness"]
    assert material["metallicFactor"] == 0.0 and material["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]
    assert gltf["meshes"][0]["extras"]["render3d"]["field_type"] == "sdf"


def test_uncoloured_mesh_exports_grey_material_and_no_colours(tmp_path):
    mesh = extract_mesh(TorusField().density, BOX, 32)
    (glb,) = export_mesh(mesh, tmp_path / "plain.glb")
    (primitive,) = glb_json(glb)["meshes"][0]["primitives"]
    assert "COLOR_0" not in primitive["attributes"]
    obj, mtl = export_mesh(mesh, tmp_path / "plain.obj")
    first_vertex = next(line for line in obj.read_text().splitlines() if line.startswith("v "))
    assert len(first_vertex.split()) == 4 and "Kd 0.8 0.8 0.8" in mtl.read_text()
    assert load_mesh(glb).visual.kind is None


def test_export_checks_the_path_before_writing(mesh, tmp_path):
    with pytest.raises(ValueError, match=r"export_mesh: argument 'path' expected a mesh file ending in "
                                         r"\.glb, \.obj, \.ply, got suffix '\.stl'"):
        export_mesh(mesh, tmp_path / "mesh.stl")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=f"export_mesh: argument 'path' expected a writable path, got "
                                         f"{blocker}/mesh.glb \\({blocker} is a file, not a folder\\)"):
        export_mesh(mesh, blocker / "mesh.glb")
    import trimesh

    for broken, said in ((trimesh.Trimesh(mesh.vertices[:3], [[0, 1, 7]], process=False), "expected faces that index "
                          "its 3 vertices, got 1 face(s) with an index out of range (largest 7) in the mesh given"),
                         (trimesh.Trimesh(np.full((3, 3), np.nan), [[0, 1, 2]], process=False),
                          "expected finite vertex coordinates, got 3 of 3 vertices not finite in the mesh given")):
        with pytest.raises(ValueError, match=re.escape(f"export_mesh: argument 'mesh' {said}")):
            export_mesh(broken, tmp_path / "broken.glb")
    with pytest.raises(ValueError, match="export_mesh: argument 'path' expected a file path, got NoneType"):
        export_mesh(mesh, None)
    (tmp_path / "mesh.mtl").mkdir()        # in the way of the OBJ's material file: was a traceback after the OBJ
    with pytest.raises(ValueError, match=f"export_mesh: argument 'path' expected a file path, got the folder "
                                         f"{tmp_path}/mesh.mtl"):
        export_mesh(mesh, tmp_path / "mesh.obj")
    assert sorted(tmp_path.iterdir()) == [blocker, tmp_path / "mesh.mtl"]


def test_load_mesh_reports_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match="load_mesh: argument 'path' expected an existing mesh file"):
        load_mesh(tmp_path / "missing.glb")
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"not a mesh")
    with pytest.raises(ValueError, match="load_mesh: argument 'path' expected a mesh file trimesh can read"):
        load_mesh(bad)
    torn = tmp_path / "torn.ply"            # a face of a vertex the file lacks: IndexError in preview-mesh
    torn.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                    "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
                    "0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    with pytest.raises(ValueError, match=f"load_mesh: argument 'path' expected faces that index its 3 vertices, got 1 "
                                         f"face\\(s\\) with an index out of range \\(largest 7\\) in {torn}"):
        load_mesh(torn)
    nan = tmp_path / "nan.obj"                          # preview-mesh used to fail in Framing.around
    nan.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv nan 0 0\nf 1 2 3\nf 1 2 4\n")
    with pytest.raises(ValueError, match="expected finite vertex coordinates, got 1 of 4 vertices not finite in"):
        load_mesh(nan)
