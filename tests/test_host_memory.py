"""The host allocator's policy (parrot_jax/host_memory.py): freed memory is kept for the
next call instead of being unmapped and faulted in again."""

import os
import subprocess
import sys
import textwrap

import pytest

from parrot_jax import host_memory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What an XLA:CPU worker thread does with a call's temporaries: malloc a block over glibc's
# 64 MB arena heap, write it, free it; page faults per page of the block, per call, after
# a first call.
PROBE = textwrap.dedent("""
    import ctypes, resource, threading
    import parrot_jax
    from parrot_jax import host_memory
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    SIZE = 96 << 20

    def call():
        block = libc.malloc(SIZE)
        ctypes.memset(block, 1, SIZE)
        libc.free(block)

    def in_thread():
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    in_thread()
    before = faults()
    for _ in range(3):
        in_thread()
    print(host_memory.applied(), (faults() - before) / 3 / (SIZE // resource.getpagesize()))
""")


def run_probe(policy: str) -> tuple[str, float]:
    env = dict(os.environ, PARROT_JAX_MALLOC=policy, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()
    return out[-2], float(out[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_retain_keeps_freed_blocks_where_system_faults_them_in_again():
    applied, faults_per_page = run_probe("system")
    assert applied == "system"
    assert faults_per_page > 0.9  # every page of every call is a fresh one
    applied, faults_per_page = run_probe("retain")
    assert applied == "retain"
    assert faults_per_page < 0.05


def test_import_applies_the_environment_policy():
    expected = "retain" if host_memory.computes_on_cpu() else "system"
    if os.environ.get(host_memory.ENV_VAR) in ("retain", "system"):
        expected = os.environ[host_memory.ENV_VAR]
    assert host_memory.applied() == expected


def test_computes_on_cpu_follows_jax_platforms(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert host_memory.computes_on_cpu()
    monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    assert not host_memory.computes_on_cpu()


def test_bad_policies_are_named(monkeypatch):
    monkeypatch.setenv(host_memory.ENV_VAR, "jemalloc")
    with pytest.raises(ValueError, match=r"PARROT_JAX_MALLOC='jemalloc'.*'auto', 'retain'"):
        host_memory.policy()
    with pytest.raises(ValueError, match=r"allocator policy 'huge'"):
        host_memory.configure("huge")


def test_a_bad_policy_at_import_warns_and_keeps_the_defaults():
    env = dict(os.environ, PARROT_JAX_MALLOC="jemalloc", PYTHONPATH=REPO)
    out = subprocess.run(
        [sys.executable, "-c", "import parrot_jax; from parrot_jax import host_memory; "
         "print(host_memory.applied())"],
        env=env, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["None"]
    assert "PARROT_JAX_MALLOC='jemalloc'" in out.stderr and "defaults kept" in out.stderr
