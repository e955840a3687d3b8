# Sourced by the scripts run on a lent GPU machine (/work/.library/device): installs the
# wheels `make device-wheels` put in .whl/ (what the machine's image lacks) and puts them
# and the repository on PYTHONPATH. Without .whl/ (a CPU run, the tests) it only does the
# latter.
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
