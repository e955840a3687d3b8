"""The install paths: the GPU requirements build on the CPU pins with the same JAX."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lines(name):
    with open(os.path.join(ROOT, name)) as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


def test_the_cuda_requirements_pin_the_cpu_jax_version():
    pins = dict(re.fullmatch(r"([\w\-\[\]]+)==(\S+)", line).groups()
                for line in _lines("requirements.txt"))
    assert pins["jax"] == pins["jaxlib"]
    cuda = _lines("requirements-cuda.txt")
    assert "-r requirements.txt" in cuda
    assert f"jax[cuda12]=={pins['jax']}" in cuda


def test_make_install_gpu_uses_them():
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    assert re.search(r"^install-gpu:.*\n\t.*pip install .*-r requirements-cuda\.txt", makefile,
                     re.M)


def test_the_onednn_requirements_are_in_the_dev_install():
    onednn = _lines("requirements-onednn.txt")
    assert {line.split("==")[0] for line in onednn} == {"onednn-cpu-gomp", "onednn-devel-cpu-gomp"}
    assert len({line.split("==")[1] for line in onednn}) == 1  # library and headers agree
    assert "-r requirements-onednn.txt" in _lines("requirements-dev.txt")
