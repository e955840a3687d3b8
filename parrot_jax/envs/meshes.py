"""Procedural low-poly triangle meshes (pure numpy) for the object library.

Every generator returns a `Mesh` whose triangles are wound counter-clockwise seen
from outside (outward normals; the TinyRenderer culls back faces), normalised so
that the mesh's lowest point is at z = 0 and its xy bounding box is centred on the
origin. Sizes are in metres. `merge` concatenates parts (the physics later uses
the convex hull of the vertices as the collision shape, so parts may overlap).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class Mesh(NamedTuple):
    """Triangle mesh: `vertices` (V, 3) float64, `indices` (3T,) int32."""

    vertices: np.ndarray
    indices: np.ndarray

    @property
    def triangles(self) -> np.ndarray:
        """(T, 3) vertex indices per triangle."""
        return self.indices.reshape(-1, 3)

    @property
    def extent(self) -> np.ndarray:
        """(3,) size of the axis-aligned bounding box."""
        return self.vertices.max(0) - self.vertices.min(0)


def normalize(vertices, tris) -> Mesh:
    """Builds a Mesh with its bottom at z = 0 and its xy bounding box centred."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    lo, hi = v.min(0), v.max(0)
    v = v - np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    return Mesh(v, np.asarray(tris, dtype=np.int32).reshape(-1))


def rpy_matrix(roll=0.0, pitch=0.0, yaw=0.0) -> np.ndarray:
    """(3, 3) rotation: `roll` about x, then `pitch` about y, then `yaw` about z (fixed axes)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def transform(mesh: Mesh, offset=(0.0, 0.0, 0.0), yaw=0.0, roll=0.0) -> Mesh:
    """Rotates a mesh by `roll` about x, then `yaw` about z, then shifts it (no normalisation)."""
    v = mesh.vertices @ rpy_matrix(roll=roll, yaw=yaw).T + np.asarray(offset, dtype=np.float64)
    return Mesh(v, mesh.indices)


def concat(meshes: Sequence[Mesh]) -> Mesh:
    """Concatenates meshes as they are (no normalisation)."""
    verts, tris, base = [], [], 0
    for m in meshes:
        verts.append(m.vertices)
        tris.append(m.indices + base)
        base += len(m.vertices)
    return Mesh(np.concatenate(verts), np.concatenate(tris).astype(np.int32))


def merge(meshes: Sequence[Mesh], offsets: Sequence = None) -> Mesh:
    """Concatenates parts (each shifted by its offset) into one normalised mesh."""
    offsets = offsets if offsets is not None else [(0.0, 0.0, 0.0)] * len(meshes)
    m = concat([Mesh(m.vertices + np.asarray(off, dtype=np.float64), m.indices) for m, off in zip(meshes, offsets)])
    return normalize(m.vertices, m.indices)


def lathe(profile, segments=16, phase=0.0, twist=0.0, closed=False) -> Mesh:
    """Surface of revolution of an (r, z) profile (cans, vases, cups, bowls, domes).

    The profile is walked counter-clockwise in the (r, z) half-plane (up the outside,
    down the inside of an open vessel) so triangles face outwards. Points with r == 0
    become poles; open ends with r > 0 get flat caps. `twist` rotates each ring by
    twist * (relative height) radians (twisted prisms); `closed` joins the last
    profile point back to the first (rings, tori).
    """
    prof = np.asarray(profile, dtype=np.float64)
    z0, z1 = prof[:, 1].min(), prof[:, 1].max()
    ang = phase + 2 * np.pi * np.arange(segments) / segments
    verts, rings = [], []
    for r, z in prof:
        a = ang + twist * (z - z0) / max(z1 - z0, 1e-9)
        start = len(verts)
        if r < 1e-9:  # pole: a single vertex
            verts.append((0.0, 0.0, z))
            rings.append([start] * segments)
        else:
            verts.extend(zip(r * np.cos(a), r * np.sin(a), np.full(segments, z)))
            rings.append(list(range(start, start + segments)))
    tris = []
    pairs = list(zip(rings[:-1], rings[1:])) + ([(rings[-1], rings[0])] if closed else [])
    for lo, hi in pairs:
        for j in range(segments):
            k = (j + 1) % segments
            a, b, c, d = lo[j], lo[k], hi[k], hi[j]
            if a != b:
                tris.append((a, b, c))
            if c != d:
                tris.append((a, c, d))
    if not closed:
        for ring, z, up in ((rings[0], prof[0, 1], False), (rings[-1], prof[-1, 1], True)):
            if ring[0] == ring[1]:
                continue
            centre = len(verts)
            verts.append((0.0, 0.0, z))
            for j in range(segments):
                k = (j + 1) % segments
                tris.append((centre, ring[j], ring[k]) if up else (centre, ring[k], ring[j]))
    return normalize(verts, tris)


def box(size) -> Mesh:
    """Rectangular box of size (sx, sy, sz)."""
    sx, sy, sz = size
    return extrude([(-sx / 2, -sy / 2), (sx / 2, -sy / 2), (sx / 2, sy / 2), (-sx / 2, sy / 2)], sz)


def bar(length, width, height) -> Mesh:
    """Long thin box lying along x."""
    return box((length, width, height))


def prism(n, radius, height, phase=0.0) -> Mesh:
    """Upright regular n-gon prism of circumradius `radius`."""
    return lathe([(radius, 0.0), (radius, height)], segments=n, phase=phase)


def cylinder(radius, height, segments=16) -> Mesh:
    """Upright cylinder (a 16-gon prism by default)."""
    return prism(segments, radius, height)


def extrude(polygon, height) -> Mesh:
    """Upright prism over a 2D polygon (counter-clockwise, star-shaped about its vertex mean)."""
    poly = np.asarray(polygon, dtype=np.float64)
    n = len(poly)
    c = poly.mean(0)
    bottom = np.column_stack([poly, np.zeros(n)])
    top = np.column_stack([poly, np.full(n, height)])
    verts = np.concatenate([bottom, top, [[c[0], c[1], 0.0], [c[0], c[1], height]]])
    tris = []
    for j in range(n):
        k = (j + 1) % n
        tris += [(j, k, n + k), (j, n + k, n + j)]  # side quad
        tris += [(2 * n, k, j), (2 * n + 1, n + j, n + k)]  # bottom and top fans
    return normalize(verts, tris)


def side_extrude(polygon_xz, depth) -> Mesh:
    """Prism over a counter-clockwise (x, z) outline, extruded `depth` along y (wedges, roofs)."""
    m = extrude(polygon_xz, depth)  # built in (x, y=z_outline, z=depth) then stood up
    return normalize(transform(m, roll=np.pi / 2).vertices, m.indices)


def torus(major, minor, segments=16, tube_segments=8) -> Mesh:
    """Ring lying flat: tube of radius `minor` around a circle of radius `major`."""
    a = 2 * np.pi * np.arange(tube_segments) / tube_segments
    # counter-clockwise in (r, z) starting at the bottom of the tube
    profile = np.column_stack([major + minor * np.sin(a), -minor * np.cos(a)])
    return lathe(profile, segments, closed=True)


def dome(radius, height, segments=16, rings=4, base=0.0) -> Mesh:
    """Closed half-ellipsoid dome (flat bottom), optionally on a straight band `base` high."""
    t = np.linspace(0, np.pi / 2, rings + 1)
    prof = [(radius * np.cos(x), base + height * np.sin(x)) for x in t]
    prof = ([(radius, 0.0)] if base > 0 else []) + prof
    return lathe(prof, segments)


def cap(radius, height, visor, brim=0.0, segments=16) -> Mesh:
    """Baseball-cap / hat: a dome with a flat visor of length `visor` in +x and/or a round brim."""
    parts = [dome(radius, height, segments)]
    offsets = [(0.0, 0.0, 0.0)]
    t = 0.003  # brim / visor thickness
    if brim > 0:
        parts.append(cylinder(radius + brim, t, segments))
        offsets.append((0.0, 0.0, 0.0))
    if visor > 0:
        # half-ellipse in front (+x), starting inside the dome so the parts overlap
        a = np.linspace(-np.pi / 2, np.pi / 2, 7)
        outline = np.column_stack([0.6 * radius + visor * np.cos(a), 0.9 * radius * np.sin(a)])
        parts.append(extrude(outline, t))
        offsets.append(((outline[:, 0].min() + outline[:, 0].max()) / 2, 0.0, 0.0))
    return merge(parts, offsets)


def chair(seat, seat_height, back_height, leg=0.006, thickness=0.006, back=True) -> Mesh:
    """Chair (seat + 4 legs + back along -x) or stool/table (back=False); seat = (sx, sy)."""
    sx, sy = seat
    parts = [box((sx, sy, thickness))]
    offsets = [(0.0, 0.0, seat_height - thickness)]
    for x in (-1, 1):
        for y in (-1, 1):
            parts.append(box((leg, leg, seat_height - thickness)))
            offsets.append((x * (sx - leg) / 2, y * (sy - leg) / 2, 0.0))
    if back:
        parts.append(box((thickness, sy, back_height)))
        offsets.append((-(sx - thickness) / 2, 0.0, seat_height))
    return merge(parts, offsets)


def stack(sizes, yaws) -> Mesh:
    """Stack of boxes (sx, sy, sz), each rotated by its yaw (totems, sculptures)."""
    parts, offsets, z = [], [], 0.0
    for size, yaw in zip(sizes, yaws):
        parts.append(transform(box(size), yaw=yaw))
        offsets.append((0.0, 0.0, z))
        z += size[2]
    return merge(parts, offsets)


def flat_normals(mesh: Mesh):
    """Unindexed copy for flat shading: returns (vertices (3T, 3), normals (3T, 3), indices (3T,))."""
    v = mesh.vertices[mesh.indices]
    tri = v.reshape(-1, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return v, np.repeat(n, 3, axis=0), np.arange(len(v), dtype=np.int32)


def signed_volume(mesh: Mesh) -> float:
    """Signed volume (positive for a closed mesh with outward triangles)."""
    t = mesh.vertices[mesh.triangles]
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6)


def convex_hull(vertices) -> Mesh:
    """Convex hull of a point set as an outward-wound mesh (not normalised)."""
    from scipy.spatial import ConvexHull  # scipy ships with jax; imported lazily (slow import)

    pts = np.asarray(vertices, dtype=np.float64)
    hull = ConvexHull(pts)
    used = np.unique(hull.simplices)
    remap = np.full(len(pts), -1)
    remap[used] = np.arange(len(used))
    tris = hull.simplices.copy()
    t = pts[tris]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    flip = np.einsum("ij,ij->i", n, hull.equations[:, :3]) < 0
    tris[flip] = tris[flip][:, ::-1]
    return Mesh(pts[used], remap[tris].reshape(-1).astype(np.int32))


def simplify(mesh: Mesh, max_triangles: int) -> Mesh:
    """Vertex-clustering decimation to at most `max_triangles` (keeps concave silhouettes)."""
    v = mesh.vertices
    size = float((v.max(0) - v.min(0)).max())
    best = mesh
    for cells in (48, 40, 32, 26, 22, 18, 15, 12, 10, 8, 6):
        if len(best.triangles) <= max_triangles:
            break
        q = np.floor((v - v.min(0)) / (size / cells)).astype(np.int64)
        keys, inverse = np.unique(q, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        sums = np.zeros((len(keys), 3))
        np.add.at(sums, inverse, v)
        centres = sums / np.bincount(inverse)[:, None]
        t = inverse[mesh.triangles]
        t = t[(t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])]
        t = np.unique(t, axis=0)  # drop duplicated triangles (same winding)
        best = Mesh(centres, t.reshape(-1).astype(np.int32))
    return best


def load_obj(path) -> Mesh:
    """Reads the vertices and faces (fan-triangulated, all groups) of a Wavefront OBJ file."""
    verts, tris = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
                tris += [(idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1)]
    return Mesh(np.asarray(verts, dtype=np.float64), np.asarray(tris, dtype=np.int32).reshape(-1))


def centroid(mesh: Mesh) -> np.ndarray:
    """Centre of mass of the solid enclosed by a closed outward mesh (uniform density)."""
    t = mesh.vertices[mesh.triangles]
    vol = np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2]))  # 6 x tetra volumes vs origin
    return (vol[:, None] * t.sum(1)).sum(0) / (4 * vol.sum())


def rest_rotation(vertices, nearest=False) -> np.ndarray:
    """(3, 3) rotation that stands a point set's convex hull on a stable face (facing -z).

    Stability of a face = the angle the solid must tip before its centre of mass passes
    the face's edge: atan(distance of the projected COM to the face boundary / COM height).
    Picks the most stable face, or with `nearest` the stable face (> 3 degrees) whose
    normal is closest to -z, i.e. the small correction an upright model settles by.
    """
    from scipy.spatial import ConvexHull

    pts = np.asarray(vertices, dtype=np.float64)
    hull = convex_hull(pts)
    com = centroid(hull)
    eqs = np.unique(np.round(ConvexHull(pts).equations, 9), axis=0)
    best, best_n = -np.inf, np.array([0.0, 0.0, -1.0])
    scale = np.abs(pts - com).max()
    for eq in eqs:
        n, d = eq[:3] / np.linalg.norm(eq[:3]), eq[3] / np.linalg.norm(eq[:3])
        on_face = pts[np.abs(pts @ n + d) < 1e-6 * scale]
        if len(on_face) < 3:
            continue
        u = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        w = np.cross(n, u)
        poly = np.column_stack([on_face @ u, on_face @ w])
        try:
            face = ConvexHull(poly)
        except Exception:  # degenerate (collinear) face
            continue
        q = np.array([com @ u, com @ w])
        margin = -(face.equations[:, :2] @ q + face.equations[:, 2]).max()
        stability = np.arctan2(margin, -(com @ n + d))
        if nearest:
            stability = -n[2] if stability > np.radians(3) else -np.inf
        if stability > best:
            best, best_n = stability, n
    # Rodrigues rotation taking best_n onto -z
    target = np.array([0.0, 0.0, -1.0])
    axis, c = np.cross(best_n, target), float(best_n @ target)
    if np.linalg.norm(axis) < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def min_width(vertices, directions=90) -> float:
    """Smallest horizontal (xy) caliper width of a point set: the pinch width of an object."""
    a = np.pi * np.arange(directions) / directions
    proj = np.asarray(vertices)[:, :2] @ np.stack([np.cos(a), np.sin(a)])
    return float((proj.max(0) - proj.min(0)).min())
