"""Object library of the tabletop manipulation suite (containers: `containers.py`).

PARROT's scenes used ~70 ShapeNet meshes for training and 9 novel objects for test.
ShapeNet is not available here, so this library is built from `pybullet_data`
assets (duck, teddy, mug, lego, jenga, toy blocks, bunny, 16 `random_urdfs` blobs)
and procedural low-poly meshes (`meshes.py`):

* `TRAIN_OBJECTS` (66): tubes, drums, prisms, cones, spools, pawns, urns, jars,
  beakers, hats, stools, benches, planks, rods, wedges, toy houses, twisted columns,
  stacked blocks, ... plus the pybullet_data assets. Their categories never use the
  test categories below; shapes related to a test object (e.g. `tall_tube` vs `can`)
  have clearly different proportions and colours.
* `TEST_OBJECTS` (10, novel): `can`, `sculpture`, `chair`, `cup`, `vase`,
  `baseball_cap`, `bar` (the paper's) plus `bottle`, `goblet`, `lamp`.

Every object is graspable by the 0.09 m gripper: pinch width (smallest horizontal
caliper width) 0.025-0.06 m, height 0.03-0.11 m, mass 0.05-0.25 kg (from its volume),
lateral friction 1.0. Its collision shape is the convex hull of its visual mesh and
its body frame is its centre of mass, so `getBasePositionAndOrientation` gives the
COM, which rests `spec.com_z` above the table. Geometry (file parsing, hulls,
decimation) is computed once per process on first use and cached in module dicts;
`preload()` does it for all objects up front. After that a spawn only calls
createCollisionShape / createVisualShape / createMultiBody / changeDynamics.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import pybullet as p
import pybullet_data

from parrot_jax.envs import meshes as M, scene

DENSITY = 700.0  # kg/m^3, a light plastic/wood; mass = clip(DENSITY * hull volume)
MASS_RANGE = (0.05, 0.25)
FRICTION = 1.0
SPAWN_CLEARANCE = 0.002  # the object's bottom starts this far above the table
MAX_WIDTH, MIN_WIDTH = 0.06, 0.025
MAX_HEIGHT, MIN_HEIGHT = 0.11, 0.03


# ----------------------------------------------------------------------------- objects


@dataclasses.dataclass(frozen=True)
class _ObjectGeometry:
    """Per-object data cached once per process; lists are ready to pass to pybullet."""

    hull: list  # collision vertices (convex hull), COM-centred
    vis_vertices: list  # flat-shaded, unindexed visual triangles, COM-centred
    vis_normals: list
    vis_indices: list
    height: float
    width: float
    length: float
    com_z: float
    mass: float
    triangles: int


_OBJECT_CACHE: dict[str, _ObjectGeometry] = {}
_FILE_CACHE: dict[str, M.Mesh] = {}


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    """A graspable object. Size properties are of the resting object at yaw 0, in metres."""

    name: str
    split: str  # "train" or "test"
    category: str
    rgba: tuple
    source: str  # "procedural" or the pybullet_data file it is made from
    build: Callable[[], M.Mesh] = dataclasses.field(repr=False, compare=False)

    @property
    def geometry(self) -> _ObjectGeometry:
        g = _OBJECT_CACHE.get(self.name)
        if g is None:
            g = _OBJECT_CACHE[self.name] = _make_geometry(self.build())
        return g

    @property
    def height(self) -> float:
        """Height of the resting object (its bottom is at the table)."""
        return self.geometry.height

    @property
    def width(self) -> float:
        """Pinch width: smallest horizontal caliper width."""
        return self.geometry.width

    @property
    def length(self) -> float:
        """Largest horizontal bounding-box side at yaw 0 (bars and benches lie along x)."""
        return self.geometry.length

    @property
    def com_z(self) -> float:
        """Height of the centre of mass (= body frame origin) above the table at rest."""
        return self.geometry.com_z

    @property
    def mass(self) -> float:
        """kg, from the hull volume at DENSITY, clipped to MASS_RANGE."""
        return self.geometry.mass

    @property
    def triangles(self) -> int:
        """Visual triangle count."""
        return self.geometry.triangles


def _make_geometry(mesh: M.Mesh) -> _ObjectGeometry:
    """Collision hull, COM-centred flat-shaded visual lists and sizes of a normalised mesh."""
    hull = M.convex_hull(mesh.vertices)
    com = M.centroid(hull)
    mass = float(np.clip(DENSITY * M.signed_volume(hull), *MASS_RANGE))
    v, n, i = M.flat_normals(mesh)
    ext = mesh.extent
    return _ObjectGeometry(
        hull=(hull.vertices - com).tolist(),
        vis_vertices=(v - com).tolist(),
        vis_normals=n.tolist(),
        vis_indices=i.tolist(),
        height=float(ext[2]),
        width=M.min_width(hull.vertices),
        length=float(max(ext[0], ext[1])),
        com_z=float(com[2]),
        mass=mass,
        triangles=len(mesh.triangles),
    )


def yaw_quaternion(yaw: float) -> list:
    """Quaternion (x, y, z, w) of a rotation about z (computed here: no pybullet client needed)."""
    return [0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2))]


def spawn_object(spec: ObjectSpec, position_xy, yaw: float, client_id: int) -> int:
    """Creates the object as a dynamic body resting upright on the table (z = 0) at (x, y)."""
    g = spec.geometry
    cid = client_id
    col = p.createCollisionShape(p.GEOM_MESH, vertices=g.hull, physicsClientId=cid)
    vis = scene.mesh_visual(cid, g.vis_vertices, g.vis_indices, g.vis_normals, spec.rgba)
    pos = [float(position_xy[0]), float(position_xy[1]), g.com_z + SPAWN_CLEARANCE]
    body = p.createMultiBody(g.mass, col, vis, basePosition=pos, baseOrientation=yaw_quaternion(yaw),
                             physicsClientId=cid)
    p.changeDynamics(body, -1, lateralFriction=FRICTION, physicsClientId=cid)
    return body


def preload() -> None:
    """Builds and caches the geometry of every object (otherwise done on first spawn)."""
    for spec in TRAIN_OBJECTS + TEST_OBJECTS:
        spec.geometry


# Recipes ---------------------------------------------------------------------------


def _asset(path, height=None, length=None, max_height=0.09, rot=None, rest=False, stretch=(1, 1, 1),
           hull_visual=False, max_triangles=300):
    """Mesh recipe from a pybullet_data OBJ: orient, scale uniformly, decimate or take the hull.

    Scaled so the height is `height`, or else the largest horizontal extent is `length`
    (then capped at `max_height`); `rot` is an (roll, pitch, yaw) re-orientation,
    `rest` stands the object on its most stable hull face ("nearest": the stable face
    closest to its bottom after `rot`), `stretch` scales the axes first.
    """

    def build() -> M.Mesh:
        if path not in _FILE_CACHE:
            _FILE_CACHE[path] = M.load_obj(os.path.join(pybullet_data.getDataPath(), path))
        mesh = _FILE_CACHE[path]
        mesh = M.Mesh(mesh.vertices * np.asarray(stretch, dtype=np.float64), mesh.indices)
        # decimate before orienting, so the resting face is computed on the final vertices
        mesh = M.convex_hull(mesh.vertices) if hull_visual else M.simplify(mesh, max_triangles)
        v = mesh.vertices
        if rot is not None:
            v = v @ M.rpy_matrix(*rot).T
        if rest:
            v = v @ M.rest_rotation(v, nearest=rest == "nearest").T
        ext = v.max(0) - v.min(0)
        scale = height / ext[2] if height else min(length / max(ext[0], ext[1]), max_height / ext[2])
        mesh = M.Mesh(v * scale, mesh.indices)
        return M.normalize(mesh.vertices, mesh.indices)

    return build


def _lathe(profile, segments=16, **kw):
    """Recipe of a surface of revolution."""
    return lambda: M.lathe(profile, segments, **kw)


def _lying_prism(n, radius, length):
    """Regular prism lying on a face with its axis along x (rods)."""
    def build():
        m = M.transform(M.prism(n, radius, length), roll=np.pi / 2, yaw=np.pi / 2)
        return M.normalize(m.vertices, m.indices)
    return build


def _star(points, outer, inner, height):
    """Recipe of an extruded star with `points` tips."""
    a = np.pi / 2 + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return lambda: M.extrude(np.column_stack([r * np.cos(a), r * np.sin(a)]), height)


def _cross(arm, half_length, height):
    """Recipe of an extruded plus sign."""
    a, b = arm / 2, half_length
    outline = [(a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
               (-a, -a), (-a, -b), (a, -b)]
    return lambda: M.extrude(outline, height)


def _rings(z_top, n):
    """n evenly spaced heights from 0 to z_top (intermediate rings for twisted lathes)."""
    return np.linspace(0.0, z_top, n)


# Saturated colours that stay distinct at 48x48.
RED, ORANGE, YELLOW, LIME = (0.9, 0.1, 0.1, 1), (1.0, 0.5, 0.0, 1), (1.0, 0.85, 0.0, 1), (0.55, 0.9, 0.1, 1)
GREEN, TEAL, CYAN, SKY = (0.1, 0.7, 0.2, 1), (0.0, 0.6, 0.55, 1), (0.0, 0.85, 0.9, 1), (0.3, 0.6, 1.0, 1)
BLUE, INDIGO, PURPLE, MAGENTA = (0.1, 0.2, 0.9, 1), (0.3, 0.1, 0.6, 1), (0.6, 0.2, 0.85, 1), (0.9, 0.1, 0.7, 1)
PINK, BROWN, WHITE, GREY = (1.0, 0.5, 0.65, 1), (0.55, 0.3, 0.1, 1), (0.95, 0.95, 0.92, 1), (0.5, 0.5, 0.55, 1)
_BLOB_COLOURS = (RED, ORANGE, YELLOW, LIME, GREEN, TEAL, CYAN, SKY, BLUE, INDIGO, PURPLE, MAGENTA, PINK)

# random_urdfs objects whose hulls are low-poly (<= 200 triangles), scale into the size
# limits and rest very stably (must tip > 25 degrees to fall over, so they do not roll
# off platforms when dropped); the 16 most stable of the first 150 such candidates.
BLOB_IDS = (10, 22, 50, 56, 108, 134, 162, 217, 230, 262, 322, 324, 330, 382, 384, 389)


def _train(name, category, rgba, build, source="procedural"):
    """A training-split object spec."""
    return ObjectSpec(name, "train", category, rgba, source, build)


def _test(name, category, rgba, build):
    """A test-split (novel) object spec."""
    return ObjectSpec(name, "test", category, rgba, "procedural", build)


_PROCEDURAL_TRAIN = (
    _train("tall_tube", "tube", LIME, lambda: M.cylinder(0.016, 0.10)),
    _train("short_drum", "drum", ORANGE, lambda: M.cylinder(0.028, 0.035)),
    _train("hex_prism", "hex_prism", MAGENTA, lambda: M.prism(6, 0.027, 0.05)),
    _train("tri_prism", "tri_prism", YELLOW, lambda: M.prism(3, 0.032, 0.045)),
    _train("pentagon_block", "pentagon_prism", SKY, lambda: M.prism(5, 0.028, 0.04)),
    _train("cone", "cone", ORANGE, _lathe([(0.028, 0), (0, 0.07)])),
    _train("frustum", "frustum", TEAL, _lathe([(0.028, 0), (0.016, 0.05)])),
    _train("bucket", "bucket", BLUE,
           _lathe([(0.02, 0), (0.028, 0.045), (0.025, 0.045), (0.017, 0.004), (0, 0.004)])),
    _train("spool", "spool", PINK, _lathe([(0.028, 0), (0.028, 0.006), (0.014, 0.009),
                                            (0.014, 0.041), (0.028, 0.044), (0.028, 0.05)])),
    _train("pawn", "pawn", WHITE, _lathe([(0.022, 0), (0.022, 0.006), (0.015, 0.01), (0.008, 0.035),
                                           (0.014, 0.04), (0.008, 0.044), (0.012, 0.05), (0.013, 0.058),
                                           (0.01, 0.065), (0, 0.068)], 12)),
    _train("bell", "bell", YELLOW, _lathe([(0.028, 0), (0.026, 0.006), (0.02, 0.02), (0.017, 0.04),
                                            (0.012, 0.052), (0.004, 0.056), (0.004, 0.064), (0, 0.064)])),
    _train("hourglass", "hourglass", CYAN, _lathe([(0.024, 0), (0.024, 0.006), (0.009, 0.035),
                                                    (0.024, 0.064), (0.024, 0.07)])),
    _train("barrel", "barrel", BROWN, _lathe([(0.022, 0), (0.027, 0.018), (0.028, 0.035),
                                               (0.027, 0.052), (0.022, 0.07)], 12)),
    _train("flask", "flask", SKY, _lathe([(0.028, 0), (0.028, 0.004), (0.01, 0.05), (0.01, 0.07),
                                           (0.013, 0.072), (0.013, 0.075), (0, 0.075)])),
    _train("urn", "urn", INDIGO, _lathe([(0.017, 0), (0.022, 0.012), (0.029, 0.035), (0.025, 0.055),
                                          (0.017, 0.062), (0.02, 0.068), (0.008, 0.072), (0, 0.076)])),
    _train("jar", "jar", ORANGE, _lathe([(0.025, 0), (0.025, 0.05), (0.02, 0.053), (0.023, 0.054),
                                          (0.023, 0.065)])),
    _train("beaker", "beaker", GREEN, _lathe([(0.022, 0), (0.022, 0.065), (0.019, 0.065),
                                              (0.019, 0.004), (0, 0.004)])),
    _train("small_bowl", "bowl", RED, _lathe([(0.015, 0), (0.027, 0.015), (0.03, 0.032), (0.027, 0.032),
                                              (0.024, 0.017), (0.013, 0.006), (0, 0.006)])),
    _train("rook", "rook", PURPLE, _lathe([(0.024, 0), (0.024, 0.006), (0.017, 0.012), (0.017, 0.05),
                                            (0.024, 0.056), (0.024, 0.07)], 12)),
    _train("mushroom", "mushroom", RED, _lathe([(0.012, 0), (0.01, 0.03), (0.028, 0.032), (0.024, 0.045),
                                                (0.012, 0.054), (0, 0.056)])),
    _train("gem", "gem", MAGENTA, _lathe([(0.016, 0), (0.028, 0.018), (0.02, 0.034)], 8)),
    _train("pyramid", "pyramid", YELLOW, _lathe([(0.035, 0), (0, 0.05)], 4, phase=np.pi / 4)),
    _train("obelisk", "obelisk", GREY, _lathe([(0.02, 0), (0.014, 0.08), (0, 0.095)], 4, phase=np.pi / 4)),
    _train("donut", "donut", PINK, lambda: M.torus(0.013, 0.016, 16, 8)),
    _train("bowler_hat", "hat", INDIGO, lambda: M.merge(
        [M.dome(0.019, 0.018, base=0.015), M.cylinder(0.029, 0.003)])),
    _train("beanie", "beanie", RED, lambda: M.dome(0.027, 0.035, base=0.006)),
    _train("stool", "stool", ORANGE, lambda: M.chair((0.045, 0.045), 0.05, 0.0, back=False)),
    _train("small_table", "table", BROWN, lambda: M.chair((0.06, 0.045), 0.035, 0.0, leg=0.007, back=False)),
    _train("bench", "bench", GREEN, lambda: M.chair((0.095, 0.035), 0.035, 0.0, back=False)),
    _train("plank", "plank", YELLOW, lambda: M.bar(0.10, 0.05, 0.03)),
    _train("beam", "beam", BLUE, lambda: M.bar(0.09, 0.038, 0.038)),
    _train("hex_rod", "rod", TEAL, _lying_prism(6, 0.018, 0.10)),
    _train("wedge", "wedge", CYAN, lambda: M.side_extrude([(0, 0), (0.09, 0), (0, 0.045)], 0.04)),
    _train("toy_house", "house", RED, lambda: M.side_extrude(
        [(0, 0), (0.05, 0), (0.05, 0.035), (0.025, 0.06), (0, 0.035)], 0.045)),
    _train("star_block", "star", YELLOW, _star(5, 0.031, 0.015, 0.035)),
    _train("cross_block", "cross", GREEN, _cross(0.02, 0.028, 0.04)),
    _train("l_block", "l_block", PURPLE, lambda: M.merge(
        [M.box((0.07, 0.035, 0.025)), M.box((0.025, 0.035, 0.045))], [(0, 0, 0), (-0.0225, 0, 0.025)])),
    _train("twisted_column", "column", LIME, _lathe([(0.024, z) for z in _rings(0.09, 5)], 6,
                                                     twist=2 * np.pi / 3)),
    _train("stacked_blocks", "stack", SKY, lambda: M.stack(
        [(0.05, 0.05, 0.02), (0.04, 0.04, 0.02), (0.03, 0.03, 0.02), (0.02, 0.02, 0.02)],
        [0, np.pi / 8, np.pi / 4, 3 * np.pi / 8])),
    _train("totem", "totem", ORANGE, lambda: M.merge(
        [M.cylinder(0.022, 0.025), M.box((0.036, 0.036, 0.02)), M.cylinder(0.016, 0.025),
         M.lathe([(0.02, 0), (0, 0.02)])], [(0, 0, 0), (0, 0, 0.025), (0, 0, 0.045), (0, 0, 0.07)])),
)

_ASSET_TRAIN = (
    _train("duck", "duck", YELLOW, _asset("duck.obj", height=0.055, rot=(np.pi / 2, 0, 0), rest="nearest"), "duck.obj"),
    _train("teddy", "teddy", BROWN, _asset("teddy2_VHACD_CHs.obj", height=0.07, rot=(np.pi / 2, 0, 0), rest="nearest",
                                           max_triangles=300), "teddy2_VHACD_CHs.obj"),
    _train("mug", "mug", WHITE, _asset("objects/mug.obj", height=0.06), "objects/mug.obj"),
    _train("lego", "lego", RED, _asset("lego/lego.obj", length=0.05, hull_visual=True), "lego/lego.obj"),
    _train("jenga_block", "jenga", ORANGE, _asset("jenga/jenga.obj", height=0.09, stretch=(0.5, 0.3, 1)),
           "jenga/jenga.obj"),
    _train("toy_cylinder", "toy", BLUE, _asset("toys/cylinder.obj", length=0.065, rest=True), "toys/cylinder.obj"),
    _train("toy_prism", "toy", GREEN, _asset("toys/prism.obj", height=0.035, rest=True), "toys/prism.obj"),
    _train("toy_cube", "toy", MAGENTA, _asset("toys/cube.obj", length=0.045, rest=True), "toys/cube.obj"),
    _train("shape_sorter", "toy", CYAN, _asset("toys/shape_sorter.obj", length=0.055), "toys/shape_sorter.obj"),
    _train("bunny", "bunny", PINK, _asset("bunny.obj", height=0.06, rot=(np.pi / 2, 0, 0), rest="nearest"), "bunny.obj"),
)

_BLOB_TRAIN = tuple(
    _train(f"blob_{i:03d}", "blob", _BLOB_COLOURS[k % len(_BLOB_COLOURS)],
           _asset(f"random_urdfs/{i:03d}/{i:03d}.obj", length=0.055, rest=True, hull_visual=True),
           f"random_urdfs/{i:03d}/{i:03d}.obj")
    for k, i in enumerate(BLOB_IDS))

TRAIN_OBJECTS: tuple[ObjectSpec, ...] = _PROCEDURAL_TRAIN + _ASSET_TRAIN + _BLOB_TRAIN

TEST_OBJECTS: tuple[ObjectSpec, ...] = (
    _test("can", "can", RED, _lathe([(0.021, 0), (0.025, 0.006), (0.025, 0.082), (0.021, 0.09),
                                     (0.018, 0.09), (0.018, 0.087), (0, 0.087)])),
    _test("sculpture", "sculpture", TEAL, lambda: M.merge(
        [M.box((0.045, 0.045, 0.012)),
         M.lathe([(0.02, 0), (0.014, 0.02), (0.01, 0.035), (0.014, 0.05), (0.022, 0.068),
                  (0.012, 0.078)], 4, twist=np.pi)], [(0, 0, 0), (0, 0, 0.012)])),
    _test("chair", "chair", RED, lambda: M.chair((0.05, 0.05), 0.04, 0.045)),
    _test("cup", "cup", CYAN, _lathe([(0.018, 0), (0.026, 0.072), (0.0275, 0.075), (0.025, 0.075),
                                      (0.0165, 0.004), (0, 0.004)])),
    _test("vase", "vase", PURPLE, _lathe([(0.016, 0), (0.027, 0.03), (0.02, 0.065), (0.011, 0.085),
                                          (0.018, 0.105), (0.015, 0.105), (0.008, 0.087), (0, 0.087)])),
    _test("baseball_cap", "cap", BLUE, lambda: M.cap(0.028, 0.032, visor=0.026)),
    _test("bar", "bar", YELLOW, lambda: M.bar(0.11, 0.028, 0.035)),
    _test("bottle", "bottle", GREEN, _lathe([(0.021, 0), (0.022, 0.005), (0.022, 0.06), (0.018, 0.072),
                                             (0.009, 0.082), (0.008, 0.1), (0.0095, 0.1), (0.0095, 0.105),
                                             (0, 0.105)])),
    _test("goblet", "goblet", ORANGE, _lathe([(0.022, 0), (0.022, 0.004), (0.006, 0.008), (0.005, 0.04),
                                              (0.01, 0.045), (0.022, 0.055), (0.028, 0.075), (0.0265, 0.075),
                                              (0.02, 0.058), (0, 0.052)])),
    _test("lamp", "lamp", MAGENTA, lambda: M.merge(
        [M.cylinder(0.022, 0.006), M.cylinder(0.004, 0.05), M.lathe([(0.028, 0), (0.014, 0.03)])],
        [(0, 0, 0), (0, 0, 0.006), (0, 0, 0.052)])),
)

ALL_OBJECTS = {s.name: s for s in TRAIN_OBJECTS + TEST_OBJECTS}


def get_object(name: str) -> ObjectSpec:
    """Looks an object up by name (ValueError listing the valid names otherwise)."""
    try:
        return ALL_OBJECTS[name]
    except KeyError:
        raise ValueError(f"unknown object {name!r}; valid names: {', '.join(sorted(ALL_OBJECTS))}") from None
