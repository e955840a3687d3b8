"""The tabletop: physics settings, the table, the workspace and the 48x48 camera.

World frame: z up, the table top is the plane z = 0, the arm's base stands at the
origin and reaches along +x. The camera faces the arm from the far side of the
table, looking down at pitch -45 degrees (the original suite used -40).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile

import numpy as np
import pybullet as p

TIMESTEP = 1.0 / 240.0
SOLVER_ITERATIONS = 150
GRAVITY = -9.81

# Where objects and containers are placed (x, y), and where the end effector may go.
SPAWN_LOW = np.array([0.38, -0.20])
SPAWN_HIGH = np.array([0.62, 0.20])
WORKSPACE_LOW = np.array([0.28, -0.28, 0.015])
WORKSPACE_HIGH = np.array([0.72, 0.28, 0.30])

_TABLE_HALF = (0.45, 0.45, 0.025)
_TABLE_CENTER = (0.45, 0.0, -0.025)
_TABLE_RGBA = (0.72, 0.58, 0.42, 1.0)
_FLOOR_RGBA = (0.35, 0.35, 0.38, 1.0)


@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera aimed at ``target`` from ``distance`` at (yaw, pitch) degrees."""

    target: tuple[float, float, float] = (0.48, 0.0, 0.06)
    distance: float = 0.52
    yaw: float = 90.0
    pitch: float = -45.0
    fov: float = 50.0
    size: int = 48

    def matrices(self) -> tuple[list[float], list[float]]:
        view = p.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=self.target, distance=self.distance, yaw=self.yaw,
            pitch=self.pitch, roll=0.0, upAxisIndex=2)
        proj = p.computeProjectionMatrixFOV(fov=self.fov, aspect=1.0, nearVal=0.05, farVal=3.0)
        return view, proj


def configure_physics(client_id: int) -> None:
    """Sets the timestep, solver iterations and gravity of a fresh simulation."""
    p.setTimeStep(TIMESTEP, physicsClientId=client_id)
    p.setPhysicsEngineParameter(numSolverIterations=SOLVER_ITERATIONS,
                                deterministicOverlappingPairs=1, physicsClientId=client_id)
    p.setGravity(0.0, 0.0, GRAVITY, physicsClientId=client_id)


def build_table(client_id: int) -> int:
    """Adds the static table (top at z = 0) and a floor patch below it; returns the table id."""
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=_TABLE_HALF, physicsClientId=client_id)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=_TABLE_HALF, rgbaColor=_TABLE_RGBA,
                              physicsClientId=client_id)
    table = p.createMultiBody(0.0, col, vis, basePosition=_TABLE_CENTER, physicsClientId=client_id)
    floor = p.createVisualShape(p.GEOM_BOX, halfExtents=(2.0, 2.0, 0.01), rgbaColor=_FLOOR_RGBA,
                                physicsClientId=client_id)
    p.createMultiBody(0.0, -1, floor, basePosition=(0.45, 0.0, -0.5), physicsClientId=client_id)
    p.changeDynamics(table, -1, lateralFriction=0.8, physicsClientId=client_id)
    return table


# "tiny": PyBullet's CPU TinyRenderer (the default; every measurement here used it).
# "egl": OpenGL through PyBullet's EGL plugin: a GPU's EGL device where there is one, else
# Mesa's software llvmpipe. Its images differ from TinyRenderer's (lighting, edges), so a
# prior trained on one renderer's images should act on the same renderer's.
RENDERERS = ("tiny", "egl")
RENDERER_ENV = "PARROT_JAX_RENDERER"  # the default renderer of envs made without one


def default_renderer() -> str:
    """``$PARROT_JAX_RENDERER`` if set (so env pools and binaries pick it up), else tiny."""
    return check_renderer(os.environ.get(RENDERER_ENV, "tiny"))


def check_renderer(renderer: str) -> str:
    if renderer not in RENDERERS:
        raise ValueError(f"renderer={renderer!r}; expected one of {RENDERERS} (also the "
                         f"values of ${RENDERER_ENV})")
    return renderer


_EGL_CLIENTS: set[int] = set()  # connections that render through the EGL plugin


def enable_egl(client_id: int) -> None:
    """Loads PyBullet's EGL renderer plugin into ``client_id`` (once per connection; it
    survives ``resetSimulation``); RuntimeError if EGL cannot start."""
    import pkgutil

    loader = pkgutil.get_loader("eglRenderer")
    plugin = -1 if loader is None else p.loadPlugin(loader.get_filename(), "_eglRendererPlugin",
                                                    physicsClientId=client_id)
    if plugin < 0:
        raise RuntimeError("the EGL renderer did not load (pybullet's eglRenderer plugin "
                           "needs libEGL: an NVIDIA driver, or Mesa); use renderer='tiny'")
    _EGL_CLIENTS.add(client_id)


def disconnect(client_id: int) -> None:
    _EGL_CLIENTS.discard(client_id)
    p.disconnect(client_id)


def mesh_visual(client_id: int, vertices, indices, normals, rgba) -> int:
    """A visual shape for a triangle mesh given as arrays. The EGL plugin only draws meshes
    read from files, so on an EGL connection the mesh goes through a cached ``.obj`` file
    (same triangles, same normals); TinyRenderer takes the arrays."""
    if client_id not in _EGL_CLIENTS:
        return p.createVisualShape(p.GEOM_MESH, vertices=vertices, indices=indices,
                                   normals=normals, rgbaColor=rgba, physicsClientId=client_id)
    return p.createVisualShape(p.GEOM_MESH, fileName=_obj_file(vertices, indices, normals),
                               rgbaColor=rgba, physicsClientId=client_id)


def _obj_file(vertices, indices, normals) -> str:
    """The mesh as a Wavefront .obj in a per-user cache, named by a hash of its contents
    (written once, atomically; reused by every env and process)."""
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    n = np.asarray(normals, np.float64).reshape(-1, 3)
    f = np.asarray(indices, np.int64).reshape(-1, 3) + 1  # .obj counts from 1
    key = hashlib.sha256(b"".join(a.tobytes() for a in (v, n, f))).hexdigest()[:20]
    directory = os.path.join(tempfile.gettempdir(), f"parrot_jax_meshes_{os.getuid()}")
    path = os.path.join(directory, key + ".obj")
    if not os.path.exists(path):
        lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in v]
        lines += [f"vn {x:.9g} {y:.9g} {z:.9g}" for x, y, z in n]
        lines += [f"f {a}//{a} {b}//{b} {c}//{c}" for a, b, c in f]
        from parrot_jax.io import atomic_write_bytes  # here: it imports imageio and PIL
        os.makedirs(directory, exist_ok=True)
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def render(client_id: int, camera: Camera, matrices=None, renderer: str = "tiny"
           ) -> np.ndarray:
    """Renders an RGB uint8 image (size, size, 3) with ``renderer`` (``RENDERERS``; "egl"
    needs ``enable_egl`` on the connection first)."""
    view, proj = matrices if matrices is not None else camera.matrices()
    _, _, rgba, _, _ = p.getCameraImage(
        camera.size, camera.size, view, proj, shadow=0,
        renderer=p.ER_TINY_RENDERER if renderer == "tiny" else p.ER_BULLET_HARDWARE_OPENGL,
        flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=client_id)
    return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(
        camera.size, camera.size, 4)[:, :, :3])


def sample_positions(rng: np.random.Generator, radii: list[float], gap: float = 0.02,
                     max_tries: int = 1000) -> np.ndarray:
    """Samples non-overlapping (x, y) positions in the spawn area for discs of ``radii``.

    Rejection sampling, so the result is a deterministic function of the rng state.
    Larger discs are placed first, which keeps the rejection rate low.
    """
    order = np.argsort(-np.asarray(radii), kind="stable")
    placed: dict[int, np.ndarray] = {}
    for i in order:
        for _ in range(max_tries):
            xy = rng.uniform(SPAWN_LOW, SPAWN_HIGH)
            if all(np.linalg.norm(xy - placed[j]) >= radii[i] + radii[j] + gap for j in placed):
                placed[int(i)] = xy
                break
        else:
            raise RuntimeError(f"could not place discs of radii {radii} in the spawn area")
    return np.stack([placed[i] for i in range(len(radii))])
