"""The 6-DoF arm under inverse-kinematics end-effector control.

The arm (``assets/arm6.urdf``) is built from boxes and cylinders so that it renders
cheaply. It is driven like the original WidowX in roboverse: each env step sets a
target end-effector pose, solves damped IK (100 iterations), and position-controls
the joints while the simulation advances.

Units: metres and radians. The end effector (``ee``) is the grasp point between the
fingers. Orientations are euler offsets ``rpy`` from the gripper-down pose (hand z
axis along world -z, fingers closing along world y): ``rpy = 0`` points straight
down and ``rpy[2]`` turns the gripper about the vertical.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pybullet as p

URDF_PATH = os.path.join(os.path.dirname(__file__), "assets", "arm6.urdf")

ARM_JOINTS = (0, 1, 2, 3, 4, 5)
FINGER_JOINTS = (6, 7)
EE_LINK = 8
FINGER_OPEN = 0.045  # per finger: 0.09 m between the fingers when open
FINGER_FORCE = 40.0  # N per finger
ARM_FORCE = 300.0
IK_ITERATIONS = 100
PALM_ABOVE_EE = 0.03  # the palm's underside is this far above the grasp point

# A posture of the elbow-up family; IK starts from the current joints, so seeding the
# arm here at reset keeps every later solution in that family.
_REST = np.array([0.0, 0.4, 1.5, 0.0, 1.2, 0.0])
_DOWN = p.getQuaternionFromEuler((0.0, np.pi, 0.0))


def quat_from_offset(rpy) -> tuple:
    """World quaternion of the hand for euler offsets ``rpy`` from gripper-down."""
    return p.multiplyTransforms((0, 0, 0), _DOWN, (0, 0, 0), p.getQuaternionFromEuler(rpy))[1]


def offset_from_quat(quat) -> np.ndarray:
    """Inverse of :func:`quat_from_offset`."""
    inv = p.invertTransform((0, 0, 0), _DOWN)[1]
    return np.asarray(p.getEulerFromQuaternion(p.multiplyTransforms((0, 0, 0), inv, (0, 0, 0), quat)[1]))


@dataclasses.dataclass(frozen=True)
class RobotState:
    """Privileged arm state read from the simulator."""

    ee_pos: np.ndarray  # (3,) grasp point, world frame
    ee_rpy: np.ndarray  # (3,) euler offsets from gripper-down
    finger_width: float  # distance between the fingers, metres
    joints: np.ndarray  # (6,) arm joint angles


class Robot:
    """Loads the arm into a PyBullet client and moves its end effector."""

    def __init__(self, client_id: int):
        self._cid = client_id
        self.body = p.loadURDF(
            URDF_PATH, basePosition=(0.0, 0.0, 0.0), useFixedBase=True,
            flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client_id)
        self.gripper_open = True

    def reset(self, joints: np.ndarray, gripper_open: bool = True) -> None:
        """Teleports the arm to ``joints`` (6,) and the fingers open or closed."""
        self.gripper_open = gripper_open
        finger = FINGER_OPEN if gripper_open else 0.0
        for j, q in zip(ARM_JOINTS, joints):
            p.resetJointState(self.body, j, float(q), physicsClientId=self._cid)
        for j in FINGER_JOINTS:
            p.resetJointState(self.body, j, finger, physicsClientId=self._cid)
        self._command(np.asarray(joints))

    def solve_ik(self, pos: np.ndarray, rpy: np.ndarray) -> np.ndarray:
        """Damped least-squares IK from the current joint state; returns (6,) angles."""
        q = p.calculateInverseKinematics(
            self.body, EE_LINK, targetPosition=pos, targetOrientation=quat_from_offset(rpy),
            jointDamping=[0.01] * 8, maxNumIterations=IK_ITERATIONS,
            residualThreshold=1e-5, physicsClientId=self._cid)
        return np.asarray(q[:6])

    def move_to(self, pos: np.ndarray, rpy: np.ndarray) -> None:
        """Sets joint position targets that put the end effector at (pos, rpy)."""
        self._command(self.solve_ik(pos, rpy))

    def set_gripper(self, open_: bool) -> bool:
        """Commands the fingers; returns whether the command changed the state."""
        changed = open_ != self.gripper_open
        self.gripper_open = open_
        self._command_fingers()
        return changed

    def _command(self, joints: np.ndarray) -> None:
        p.setJointMotorControlArray(
            self.body, ARM_JOINTS, p.POSITION_CONTROL, targetPositions=joints.tolist(),
            forces=[ARM_FORCE] * 6, physicsClientId=self._cid)
        self._command_fingers()

    def _command_fingers(self) -> None:
        target = FINGER_OPEN if self.gripper_open else 0.0
        p.setJointMotorControlArray(
            self.body, FINGER_JOINTS, p.POSITION_CONTROL, targetPositions=[target] * 2,
            forces=[FINGER_FORCE] * 2, physicsClientId=self._cid)

    def state(self) -> RobotState:
        link = p.getLinkState(self.body, EE_LINK, computeForwardKinematics=True,
                             physicsClientId=self._cid)
        joints = p.getJointStates(self.body, ARM_JOINTS + FINGER_JOINTS,
                                 physicsClientId=self._cid)
        q = np.array([s[0] for s in joints])
        return RobotState(
            ee_pos=np.asarray(link[4]), ee_rpy=offset_from_quat(link[5]),
            finger_width=float(q[6] + q[7]), joints=q[:6])

    def home_joints(self, pos: np.ndarray, rpy: np.ndarray, iterations: int = 20) -> np.ndarray:
        """Joint angles that place the end effector at (pos, rpy), by repeated IK."""
        q = _REST.copy()
        for _ in range(iterations):
            for j, a in zip(ARM_JOINTS, q):
                p.resetJointState(self.body, j, float(a), physicsClientId=self._cid)
            q = self.solve_ik(pos, rpy)
        return q
