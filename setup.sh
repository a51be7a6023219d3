#!/usr/bin/env bash
# One-command set-up for wakeprep: system packages (Debian/Ubuntu) and the Python
# packages, installed into the Python that `python3` runs (use a virtual environment
# if you prefer: activate it first).
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        espeak-ng sox libsox-fmt-all chromium gcc libc6-dev >/dev/null
else
    echo "setup.sh: no apt-get here; install espeak-ng, sox (with its format plugins) and a C compiler yourself" >&2
fi

python3 -m pip install --quiet --upgrade pip
# The CPU build of torch: a plain `torch` requirement would pull several GB of CUDA
# packages. On a GPU machine install the CUDA build yourself before running this.
python3 -c "import torch" 2>/dev/null || python3 -m pip install --quiet "torch==2.13.0"
# builds the features' C kernel in place (wakeprep/frontend/_cpu_kernel*.so) when a C compiler is
# present; without one the install still succeeds and the numba kernel computes the same codes
python3 -m pip install --quiet -e ".[test]"
python3 -c "from wakeprep.frontend import cpu; print('setup.sh: features on the CPU with the', cpu.KERNEL, 'kernel')"
# resemblyzer depends on webrtcvad 2.0.10, whose module imports pkg_resources (gone from
# new setuptools); webrtcvad-wheels (a dependency above) provides the same module, so
# resemblyzer goes in without its own dependency list.
python3 -m pip install --quiet --no-deps "resemblyzer==0.1.4"
python3 -c "import resemblyzer, webrtcvad" 
echo "setup.sh: done. Next: snakemake --cores 2"
