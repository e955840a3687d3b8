"""Containers of the tabletop suite: static bodies that objects go in or on.

`TRAIN_CONTAINERS` (8): tray, bowl, plate, bin, ring, hex_dish, pedestal, board.
`TEST_CONTAINERS` (4, novel): `pan`, `basket`, `checkerboard_table`, `block`.

Containers are static compound bodies made of box (and cylinder) collision shapes, so
walls are real walls (a convex hull would fill the inside); `radius`, `top_z` and
`height` say where objects go. The checkerboard and the block's marble veins are a
second, visual-only link with its own colour (no texture files needed). Argument
lists are computed once per process, so a spawn only creates the shapes and the body.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pybullet as p

from parrot_jax.envs import meshes as M, scene
from parrot_jax.envs.objects import BLUE, FRICTION, GREEN, LIME, MAGENTA, ORANGE, RED, TEAL, WHITE, YELLOW, yaw_quaternion

@dataclasses.dataclass(frozen=True)
class _ContainerGeometry:
    boxes: list  # (half_extents, position, quaternion) of box collision shapes
    cylinders: list  # (radius, length, position) of upright cylinder collision shapes
    visual: M.Mesh  # in the container frame (bottom at z = 0)
    accent: M.Mesh | None = None  # visual-only detail in `accent_rgba` (checkers, veins)


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """A static container; objects count as in/on it within `radius` of its centre."""

    name: str
    split: str
    category: str
    radius: float  # xy radius within which an object counts as in/on it
    top_z: float  # z of the surface an object rests on (floor or top)
    height: float  # z of the highest point (rim)
    rgba: tuple
    accent_rgba: tuple | None
    geometry: _ContainerGeometry = dataclasses.field(repr=False, compare=False)


def _q(yaw=0.0, pitch=0.0):
    """Quaternion (x, y, z, w) of a pitch about y followed by a yaw about z."""
    cy, sy, cp, sp = np.cos(yaw / 2), np.sin(yaw / 2), np.cos(pitch / 2), np.sin(pitch / 2)
    return [-sy * sp, cy * sp, sy * cp, cy * cp]


def _dish(name, split, category, sides, inner_bottom, inner_top, wall, height, floor, rgba,
          radius=None, extra_boxes=()):
    """Polygonal dish/ring: floor cylinder plus `sides` wall boxes (tilted for sloped walls).

    inner_* are the apothems of the inner wall at the floor and at the rim; a floor of 0
    makes a ring standing on the table. PyBullet keeps at most 16 shapes of a collision
    shape array, so sides + floor + extra (axis-aligned) boxes must stay <= 16.
    """
    c = np.cos(np.pi / sides)
    phase = np.pi / sides  # puts a flat wall face at yaw 0
    prof = [(inner_bottom + wall, 0.0), (inner_top + wall, height), (inner_top, height), (inner_bottom, floor)]
    prof = [(r / c, z) for r, z in prof] + ([(0.0, floor)] if floor > 0 else [])
    visual = M.lathe(prof, sides, phase=phase, closed=floor == 0)
    tilt = np.arctan2(inner_top - inner_bottom, height - floor)
    slant = np.hypot(inner_top - inner_bottom, height - floor)
    edge = 2 * np.tan(np.pi / sides) * (inner_top + wall)
    # wall boxes sit just outside the inner wall line, offset along its outward normal
    r_mid = (inner_bottom + inner_top) / 2 + wall / 2 * np.cos(tilt)
    z_mid = (floor + height) / 2 - wall / 2 * np.sin(tilt)
    boxes = []
    for k in range(sides):
        a = 2 * np.pi * k / sides
        boxes.append(([wall / 2, edge / 2, slant / 2], [r_mid * np.cos(a), r_mid * np.sin(a), z_mid], _q(a, tilt)))
    boxes += list(extra_boxes)
    visual = M.concat([visual] + [_box_mesh(b) for b in extra_boxes])
    cylinders = [(inner_bottom + wall / 2, floor, [0.0, 0.0, floor / 2])] if floor > 0 else []
    return ContainerSpec(name, split, category, radius or inner_bottom, floor, height, rgba, None,
                         _ContainerGeometry(boxes, cylinders, visual))


def _box_mesh(box) -> M.Mesh:
    """Visual mesh of an axis-aligned collision box (half_extents, position, quaternion)."""
    half, pos, _ = box
    m = M.box(2 * np.asarray(half))
    return M.Mesh(m.vertices + np.asarray(pos) - [0, 0, half[2]], m.indices)


def _boxes_container(name, split, category, boxes, radius, top_z, rgba, accent=None, accent_rgba=None):
    """Container made of axis-aligned boxes (half_extents, centre) used for collision and visual."""
    boxes = [(list(h), list(c), [0.0, 0.0, 0.0, 1.0]) for h, c in boxes]
    visual = M.concat([_box_mesh(b) for b in boxes])
    height = float(visual.vertices[:, 2].max())
    return ContainerSpec(name, split, category, radius, top_z, height, rgba, accent_rgba,
                         _ContainerGeometry(boxes, [], visual, accent))


def _open_box(name, split, category, inner_x, inner_y, wall, height, floor, rgba):
    """Open rectangular box: floor plus four walls."""
    ox, oy, hw = inner_x / 2 + wall, inner_y / 2 + wall, (height - floor) / 2
    boxes = [((ox, oy, floor / 2), (0, 0, floor / 2)),
             ((ox, wall / 2, hw), (0, oy - wall / 2, floor + hw)), ((ox, wall / 2, hw), (0, -oy + wall / 2, floor + hw)),
             ((wall / 2, inner_y / 2, hw), (ox - wall / 2, 0, floor + hw)),
             ((wall / 2, inner_y / 2, hw), (-ox + wall / 2, 0, floor + hw))]
    return _boxes_container(name, split, category, boxes, min(inner_x, inner_y) / 2, floor, rgba)


def _tiles(cells, size, z, parity):
    """Flat upward quads of a size x size board of cells x cells squares, those with (i + j) % 2 == parity."""
    verts, tris = [], []
    s = size / cells
    for i in range(cells):
        for j in range(cells):
            if (i + j) % 2 != parity:
                continue
            x0, y0 = -size / 2 + i * s, -size / 2 + j * s
            b = len(verts)
            verts += [(x0, y0, z), (x0 + s, y0, z), (x0 + s, y0 + s, z), (x0, y0 + s, z)]
            tris += [b, b + 1, b + 2, b, b + 2, b + 3]
    return M.Mesh(np.asarray(verts, dtype=np.float64), np.asarray(tris, dtype=np.int32))


def _veins(size, z):
    """A few thin dark quads across the top of a block (marble veins)."""
    verts, tris = [], []
    h = size / 2
    for (x0, y0), (x1, y1), w in (((-h, -0.3 * h), (0.5 * h, h), 0.004), ((-0.2 * h, -h), (h, 0.1 * h), 0.003),
                                  ((-h, 0.4 * h), (-0.1 * h, h), 0.0025)):
        d = np.array([x1 - x0, y1 - y0])
        n = np.array([-d[1], d[0]]) / np.linalg.norm(d) * w / 2
        b = len(verts)
        for px, py in ((x0, y0) - n, (x1, y1) - n, (x1, y1) + n, (x0, y0) + n):
            verts.append((px, py, z))
        tris += [b, b + 1, b + 2, b, b + 2, b + 3]
    return M.Mesh(np.asarray(verts, dtype=np.float64), np.asarray(tris, dtype=np.int32))


def _checkerboard_table():
    top, thick, leg, size = 0.04, 0.01, 0.012, 0.16
    boxes = [((size / 2, size / 2, thick / 2), (0, 0, top - thick / 2))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            off = size / 2 - leg
            boxes.append(((leg / 2, leg / 2, (top - thick) / 2), (sx * off, sy * off, (top - thick) / 2)))
    return _boxes_container("checkerboard_table", "test", "checkerboard_table", boxes, size / 2, top, WHITE,
                            accent=_tiles(4, size, top + 0.0005, 0), accent_rgba=(0.05, 0.05, 0.05, 1))


def _block():
    s, h = 0.1, 0.05
    return _boxes_container("block", "test", "block", [((s / 2, s / 2, h / 2), (0, 0, h / 2))], s / 2, h,
                            (0.9, 0.89, 0.86, 1), accent=_veins(s, h + 0.0005), accent_rgba=(0.45, 0.47, 0.55, 1))


def _pedestal():
    r, h = 0.06, 0.04
    return ContainerSpec("pedestal", "train", "pedestal", r, h, h, ORANGE, None,
                         _ContainerGeometry([], [(r, h, [0.0, 0.0, h / 2])], M.cylinder(r, h)))


_PAN_HANDLE = (((0.03, 0.009, 0.004), (-0.11, 0.0, 0.022), [0.0, 0.0, 0.0, 1.0]),)

TRAIN_CONTAINERS: tuple[ContainerSpec, ...] = (
    _open_box("tray", "train", "tray", 0.16, 0.12, 0.006, 0.022, 0.006, BLUE),
    _dish("bowl", "train", "bowl", 14, 0.045, 0.068, 0.006, 0.05, 0.006, RED, radius=0.056),
    _dish("plate", "train", "plate", 14, 0.075, 0.082, 0.005, 0.014, 0.006, YELLOW),
    _open_box("bin", "train", "bin", 0.12, 0.15, 0.006, 0.055, 0.006, GREEN),
    _dish("ring", "train", "ring", 14, 0.062, 0.062, 0.008, 0.022, 0.0, MAGENTA),
    _dish("hex_dish", "train", "hex_dish", 6, 0.07, 0.07, 0.006, 0.028, 0.006, TEAL),
    _pedestal(),
    _boxes_container("board", "train", "board", [((0.09, 0.06, 0.006), (0, 0, 0.006))], 0.06, 0.012, LIME),
)

TEST_CONTAINERS: tuple[ContainerSpec, ...] = (
    _dish("pan", "test", "pan", 14, 0.072, 0.078, 0.005, 0.03, 0.005, (0.18, 0.18, 0.2, 1),
          extra_boxes=_PAN_HANDLE),
    _open_box("basket", "test", "basket", 0.13, 0.13, 0.006, 0.045, 0.006, (0.7, 0.45, 0.15, 1)),
    _checkerboard_table(),
    _block(),
)

ALL_CONTAINERS = {s.name: s for s in TRAIN_CONTAINERS + TEST_CONTAINERS}


def get_container(name: str) -> ContainerSpec:
    """Looks a container up by name (ValueError listing the valid names otherwise)."""
    try:
        return ALL_CONTAINERS[name]
    except KeyError:
        raise ValueError(f"unknown container {name!r}; valid names: {', '.join(sorted(ALL_CONTAINERS))}") from None


_CONTAINER_CACHE: dict[str, tuple] = {}


def _container_lists(spec: ContainerSpec):
    """Pybullet-ready argument lists of a container, computed once."""
    if spec.name not in _CONTAINER_CACHE:
        g = spec.geometry
        v, n, i = M.flat_normals(g.visual)
        accent = None
        if g.accent is not None:
            av, an, ai = M.flat_normals(g.accent)
            accent = (av.tolist(), an.tolist(), ai.tolist())
        shapes = dict(
            shapeTypes=[p.GEOM_BOX] * len(g.boxes) + [p.GEOM_CYLINDER] * len(g.cylinders),
            halfExtents=[list(map(float, b[0])) for b in g.boxes] + [[0.0, 0.0, 0.0]] * len(g.cylinders),
            radii=[0.0] * len(g.boxes) + [float(c[0]) for c in g.cylinders],
            lengths=[0.0] * len(g.boxes) + [float(c[1]) for c in g.cylinders],
            collisionFramePositions=[list(map(float, b[1])) for b in g.boxes] + [list(map(float, c[2])) for c in g.cylinders],
            collisionFrameOrientations=[list(map(float, b[2])) for b in g.boxes] + [[0.0, 0.0, 0.0, 1.0]] * len(g.cylinders),
        )
        assert len(shapes["shapeTypes"]) <= 16, "pybullet drops compound shapes past 16"
        _CONTAINER_CACHE[spec.name] = (shapes, (v.tolist(), n.tolist(), i.tolist()), accent)
    return _CONTAINER_CACHE[spec.name]


def spawn_container(spec: ContainerSpec, position_xy, yaw: float, client_id: int) -> int:
    """Creates the container as a static body standing on the table at (x, y)."""
    cid = client_id
    shapes, (v, n, i), accent = _container_lists(spec)
    col = p.createCollisionShapeArray(**shapes, physicsClientId=cid)
    vis = scene.mesh_visual(cid, v, i, n, spec.rgba)
    pos = [float(position_xy[0]), float(position_xy[1]), 0.0]
    links = {}
    if accent is not None:
        av, an, ai = accent
        avis = scene.mesh_visual(cid, av, ai, an, spec.accent_rgba)
        zero3, ident = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]
        links = dict(linkMasses=[0.0], linkCollisionShapeIndices=[-1], linkVisualShapeIndices=[avis],
                     linkPositions=[zero3], linkOrientations=[ident], linkInertialFramePositions=[zero3],
                     linkInertialFrameOrientations=[ident], linkParentIndices=[0],
                     linkJointTypes=[p.JOINT_FIXED], linkJointAxis=[[0.0, 0.0, 1.0]])
    body = p.createMultiBody(0.0, col, vis, basePosition=pos, baseOrientation=yaw_quaternion(yaw),
                             physicsClientId=cid, **links)
    p.changeDynamics(body, -1, lateralFriction=FRICTION, physicsClientId=cid)
    return body
