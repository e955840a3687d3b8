# Sourced by the scripts run on a lent GPU machine (/work/.library/device): installs the
# wheels `make device-wheels` put in .whl/ (DEVICE_WHEELS, for the tests: another folder;
# what the machine's image lacks) and puts them and the repository on PYTHONPATH. Without
# wheels there (a CPU run, the tests) it only does the latter.
wheels="${DEVICE_WHEELS:-.whl}"
if compgen -G "$wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$wheels"/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
