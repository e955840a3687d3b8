"""Tests of the object and container libraries: split, sizes, settling, containers, speed, rendering."""

import time

import numpy as np
import pybullet as p
import pytest

from parrot_jax.envs import meshes as M
from parrot_jax.envs import objects as O
from parrot_jax.envs import containers as C

ALL = O.TRAIN_OBJECTS + O.TEST_OBJECTS
CONTAINERS = C.TRAIN_CONTAINERS + C.TEST_CONTAINERS
PAPER_TEST = ("can", "sculpture", "chair", "cup", "vase", "baseball_cap", "bar")
MARGIN = 0.002  # pybullet pads getAABB by this much on every side
DT = 1.0 / 240.0


@pytest.fixture
def client():
    cid = p.connect(p.DIRECT)
    p.setGravity(0, 0, -9.8, physicsClientId=cid)
    p.setTimeStep(DT, physicsClientId=cid)
    # the table: a large static slab whose top is the plane z = 0
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[2, 2, 0.05], physicsClientId=cid)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[2, 2, 0.05], rgbaColor=[0.7, 0.6, 0.45, 1],
                              physicsClientId=cid)
    table = p.createMultiBody(0, col, vis, basePosition=[0, 0, -0.05], physicsClientId=cid)
    p.changeDynamics(table, -1, lateralFriction=1.0, physicsClientId=cid)
    yield cid
    p.disconnect(cid)


def _aabb(body, cid):
    lo, hi = p.getAABB(body, physicsClientId=cid)
    return np.asarray(lo) + MARGIN, np.asarray(hi) - MARGIN


def _lowest_z(spec, body, cid):
    """Exact lowest point of an object's collision hull (getAABB inflates for rotated bodies)."""
    pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=cid)
    rot = np.asarray(p.getMatrixFromQuaternion(quat)).reshape(3, 3)
    return float((np.asarray(spec.geometry.hull) @ rot.T)[:, 2].min() + pos[2])


def _step(cid, n):
    for _ in range(n):
        p.stepSimulation(physicsClientId=cid)


def test_counts_names_and_split():
    assert len(O.TRAIN_OBJECTS) >= 50 and len(O.TEST_OBJECTS) >= 9
    assert len(C.TRAIN_CONTAINERS) >= 6
    assert {c.name for c in C.TEST_CONTAINERS} == {"pan", "basket", "checkerboard_table", "block"}
    names = [s.name for s in ALL]
    assert len(set(names)) == len(names)
    cnames = [c.name for c in CONTAINERS]
    assert len(set(cnames)) == len(cnames)
    assert all(s.split == "train" for s in O.TRAIN_OBJECTS + C.TRAIN_CONTAINERS)
    assert all(s.split == "test" for s in O.TEST_OBJECTS + C.TEST_CONTAINERS)
    test_names = {s.name for s in O.TEST_OBJECTS}
    assert set(PAPER_TEST) <= test_names and len(test_names - set(PAPER_TEST)) >= 2
    # novel objects: no training object shares a test object's category
    assert not {s.category for s in O.TRAIN_OBJECTS} & {s.category for s in O.TEST_OBJECTS}
    assert not {c.category for c in C.TRAIN_CONTAINERS} & {c.category for c in C.TEST_CONTAINERS}
    assert O.get_object("can") is O.TEST_OBJECTS[0] and C.get_container("pan").name == "pan"


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="nope") as err:
        O.get_object("nope")
    assert "can" in str(err.value) and "duck" in str(err.value)
    with pytest.raises(ValueError, match="basket"):
        C.get_container("nope")


def test_spec_sizes_within_gripper_limits():
    for s in ALL:
        assert O.MIN_HEIGHT <= s.height <= O.MAX_HEIGHT, s
        assert O.MIN_WIDTH <= s.width <= O.MAX_WIDTH, s
        assert s.length <= 0.15 and O.MASS_RANGE[0] <= s.mass <= O.MASS_RANGE[1], s
        assert 0 < s.com_z < s.height
        assert s.triangles <= 300, (s.name, s.triangles)
    for c in CONTAINERS:
        assert 0.05 <= c.radius <= 0.09 and c.height <= 0.06 and 0 <= c.top_z <= c.height, c
        tris = len(c.geometry.visual.triangles) + (0 if c.geometry.accent is None else len(c.geometry.accent.triangles))
        assert tris <= 300, c.name


def test_meshes_outward_and_normalized():
    for s in ALL:
        m = s.build()
        assert M.signed_volume(m) > 0, s.name  # outward triangles enclose positive volume
        lo, hi = m.vertices.min(0), m.vertices.max(0)
        assert abs(lo[2]) < 1e-12 and np.allclose(lo[:2], -hi[:2]), s.name
    # convex meshes: every face normal points away from the interior
    for m in (M.box((0.03, 0.04, 0.05)), M.prism(5, 0.03, 0.04), M.lathe([(0.02, 0), (0.03, 0.04), (0, 0.06)]),
              M.convex_hull(np.random.default_rng(0).normal(size=(40, 3)))):
        t = m.vertices[m.triangles]
        n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
        assert (np.einsum("ij,ij->i", n, t.mean(1) - m.vertices.mean(0)) > 0).all()
    assert M.min_width(M.box((0.03, 0.08, 0.01)).vertices) == pytest.approx(0.03)


def test_objects_settle_upright_on_table(client):
    spacing, cols = 0.2, 10
    bodies = []
    for k, s in enumerate(ALL):
        xy = (-1.0 + spacing * (k % cols), -1.0 + spacing * (k // cols))
        bodies.append((s, xy, O.spawn_object(s, xy, 0.0, client)))
        lo, _ = _aabb(bodies[-1][2], client)
        assert 0 <= lo[2] <= 0.005, s.name  # spawned just above the table
    _step(client, 100)
    for s, xy, b in bodies:
        lo, hi = _aabb(b, client)
        ext = hi - lo
        pos, quat = p.getBasePositionAndOrientation(b, physicsClientId=client)
        roll, pitch, _ = p.getEulerFromQuaternion(quat)
        assert -0.005 <= lo[2] <= 0.02, s.name
        assert abs(roll) < 0.03 and abs(pitch) < 0.03, s.name  # did not tip over
        assert np.hypot(pos[0] - xy[0], pos[1] - xy[1]) < 0.01, s.name
        assert abs(ext[2] - s.height) < 0.005, (s.name, ext[2], s.height)
        assert O.MIN_HEIGHT - 0.003 <= ext[2] <= O.MAX_HEIGHT + 0.003, s.name
        assert s.width - 0.003 <= min(ext[0], ext[1]) <= max(ext[0], ext[1]) <= s.length + 0.003, s.name
        mass = p.getDynamicsInfo(b, -1, physicsClientId=client)[0]
        assert mass == pytest.approx(s.mass)


@pytest.mark.parametrize("obj", ["cup", "short_drum", "blob_050"])
def test_objects_drop_into_containers(client, obj):
    spec = O.get_object(obj)
    pairs = []
    for k, c in enumerate(CONTAINERS):
        xy = (-1.5 + 0.3 * (k % 6), -0.6 + 0.3 * (k // 6))
        cb = C.spawn_container(c, xy, 0.3 * k, client)
        lo, hi = p.getAABB(cb, physicsClientId=client)  # static bodies: AABB not padded
        assert abs(hi[2] - c.height) < 0.001 and abs(lo[2]) < 0.001, c.name
        g = c.geometry
        shapes = p.getCollisionShapeData(cb, -1, physicsClientId=client)
        assert len(shapes) == len(g.boxes) + len(g.cylinders), c.name
        assert p.getDynamicsInfo(cb, -1, physicsClientId=client)[0] == 0.0  # static
        ob = O.spawn_object(spec, xy, 0.0, client)
        p.resetBasePositionAndOrientation(ob, [xy[0], xy[1], c.height + 0.05 + spec.com_z], [0, 0, 0, 1],
                                          physicsClientId=client)
        pairs.append((c, xy, ob))
    _step(client, 240)
    for c, xy, ob in pairs:
        pos, _ = p.getBasePositionAndOrientation(ob, physicsClientId=client)
        bottom = _lowest_z(spec, ob, client)
        assert np.hypot(pos[0] - xy[0], pos[1] - xy[1]) < c.radius, (c.name, obj)
        assert c.top_z - 0.003 <= bottom <= c.top_z + 0.01, (c.name, obj, bottom)


def test_walls_hold_objects_in(client):
    """An object pushed against a container wall stays inside (the walls are real, not a hull)."""
    spec = O.get_object("short_drum")
    for k, c in enumerate(c for c in CONTAINERS if c.top_z < c.height * 0.5):
        xy = (-1.5 + 0.3 * k, 0.0)
        C.spawn_container(c, xy, 0.0, client)
        ob = O.spawn_object(spec, xy, 0.0, client)
        p.resetBasePositionAndOrientation(ob, [xy[0], xy[1], c.top_z + spec.com_z + 0.002], [0, 0, 0, 1],
                                          physicsClientId=client)
        p.resetBaseVelocity(ob, [0.5, 0.0, 0.0], physicsClientId=client)
        _step(client, 120)
        pos, _ = p.getBasePositionAndOrientation(ob, physicsClientId=client)
        assert abs(pos[0] - xy[0]) < c.radius + 0.01, c.name


def test_spawn_is_deterministic_and_fast():
    O.preload()
    cids = [p.connect(p.DIRECT) for _ in range(2)]
    try:
        data = []
        for cid in cids:
            per_client = []
            for s in ALL:
                b = O.spawn_object(s, (0.5, 0.1), 0.7, cid)
                per_client.append((p.getAABB(b, physicsClientId=cid), p.getMeshData(b, physicsClientId=cid)))
            for c in CONTAINERS:
                b = C.spawn_container(c, (0.5, 0.1), 0.7, cid)
                per_client.append((p.getAABB(b, physicsClientId=cid), None))
            data.append(per_client)
        assert data[0] == data[1]
        for s in ALL[:5]:
            a, b = s.build(), s.build()
            assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.indices, b.indices)
        # spawn time on a reset scene (geometry cached)
        cid = cids[0]
        p.resetSimulation(physicsClientId=cid)
        start = time.perf_counter()
        for s in ALL:
            O.spawn_object(s, (0.5, 0.0), 0.0, cid)
        mean_ms = (time.perf_counter() - start) / len(ALL) * 1e3
        assert mean_ms < 2.0, mean_ms
    finally:
        for cid in cids:
            p.disconnect(cid)


def test_render_48x48(client):
    view = p.computeViewMatrixFromYawPitchRoll([0.5, 0.0, 0.0], 0.6, 90, -40, 0, 2)
    proj = p.computeProjectionMatrixFOV(45, 1.0, 0.01, 5.0)

    def render():
        img = p.getCameraImage(48, 48, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=client)[2]
        return np.asarray(img, dtype=np.uint8).reshape(48, 48, 4)[..., :3].astype(np.float64)

    empty = render()
    C.spawn_container(C.get_container("checkerboard_table"), (0.5, 0.12), 0.0, client)
    for name, xy in (("can", (0.42, -0.1)), ("duck", (0.5, -0.05)), ("blob_134", (0.58, -0.12))):
        O.spawn_object(O.get_object(name), xy, 0.0, client)
    img = render()
    changed = np.abs(img - empty).sum(-1) > 30
    assert changed.sum() > 40 and img.std() > 20
