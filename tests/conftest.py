"""Test-wide setup: four host CPU devices, so multi-device code runs without a GPU.

XLA reads the flag when the backend starts, so it is set before any test imports JAX.
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=4"]).strip()
