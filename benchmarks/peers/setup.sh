#!/usr/bin/env bash
# The peers' side environment for fluoxr's benchmarks and peer tests (CPU only, PyPI only).
#
#   bash benchmarks/peers/setup.sh                    -> ~/.cache/fluoxr-peers/venv (+ .../alt/cellects-{0.4.14,1.1.0})
#   VENV=DIR/venv ALT=DIR/alt bash benchmarks/peers/setup.sh
#
# The five peers (pysofi, suite2p, optimap, Cellects, cellector) do not install with their declared
# dependencies here (CUDA torch via cellpose/torchvision, full Qt GUIs, napari), so each is installed
# --no-deps and only what the compared modules import is added, pinned by constraints.txt beside this
# file. fluoxr itself (this checkout, editable) and its test extras go into the same venv, so the peer
# tests run there:
#
#   PYTHONPATH=~/.cache/fluoxr-peers/alt/cellects-1.1.0 ~/.cache/fluoxr-peers/venv/bin/python -m pytest
#
# The benchmarks find this venv by default (benchmarks/*.py --help). About two minutes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/fluoxr-peers"
VENV="${VENV:-$CACHE/venv}"
ALT="${ALT:-$CACHE/alt}"
PINS="$HERE/constraints.txt"

rm -rf "$VENV"
python3.11 -m venv "$VENV"
pip_in() { "$VENV/bin/pip" install -q --disable-pip-version-check "$@"; }

# CPU torch before anything that could pull a CUDA build
pip_in -c "$PINS" torch==2.13.0
pip_in -c "$PINS" numpy scipy tifffile dask distributed xarray zarr numba pandas matplotlib h5py
pip_in --no-deps pysofi==0.1.1a0 suite2p==1.1.0 optimap==0.3.1 cellects==1.1.21 cellector==2.0.3 cellpose==4.2.1.1
# what suite2p.extraction, optimap.trace and cellects.video import
pip_in -c "$PINS" natsort tqdm psutil networkx scikit-learn fastremap fill-voids opencv-contrib-python-headless \
    pooch scikit-image scikit-video pymatreader seasonal mpl-pan-zoom exifread exif progress requests filelock
pip_in -c "$PINS" --no-deps static_ffmpeg PySide6_Essentials shiboken6

# suite2p imports cellpose, which imports torchvision at import time; every torchvision wheel on PyPI is a
# CUDA build that fails against the CPU torch, and extraction never calls it: an import-only stub
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$SITE/torchvision/transforms"
printf '"""Import-only stub (fluoxr peer venv): torchvision is not available."""\n__version__ = "0.0.0+stub"\n\n\ndef __getattr__(name):\n    raise AttributeError(f"torchvision stub: {name} is not available")\n' \
    > "$SITE/torchvision/__init__.py"
: > "$SITE/torchvision/transforms/__init__.py"
for m in functional _functional_tensor; do
    printf 'def __getattr__(name):\n    raise AttributeError(f"torchvision stub: {name} is not available")\n' \
        > "$SITE/torchvision/transforms/$m.py"
done

# Cellects releases that still have the free function detect_oscillations_dynamics, side by side
# (0.4.14: cellects.image_analysis, 1.1.0: cellects.video); put one on PYTHONPATH to use it
rm -rf "$ALT/cellects-0.4.14" "$ALT/cellects-1.1.0"
pip_in --no-deps --target "$ALT/cellects-0.4.14" cellects==0.4.14
pip_in --no-deps --target "$ALT/cellects-1.1.0" cellects==1.1.0

# Cellects' ClusterFluxStudy is in no release: the oracle of tests/test_cluster_flux.py needs its source from
# Cellects' git history (GPL-3.0, so it is fetched here rather than kept in fluoxr's BSD repository)
ORACLES="${FLUOXR_PEER_ORACLES:-$CACHE/oracle}"
CELLECTS_SHA=e1fd190d900b7cf4570bd481c0f66485d126f9a5
mkdir -p "$ORACLES"
if ! curl -fsSL -o "$ORACLES/cellects_cluster_flux_study.py" \
    "https://raw.githubusercontent.com/Aurele-B/Cellects/$CELLECTS_SHA/src/cellects/image_analysis/oscillations_functions.py"; then
    rm -f "$ORACLES/cellects_cluster_flux_study.py"
    echo "could not fetch Cellects' ClusterFluxStudy (github.com unreachable?): its live peer tests will skip"
fi

# fluoxr and its test extras, without letting them move the pins above
pip_in -c "$PINS" pytest pytest-timeout hypothesis cloudpickle nbclient nbformat ipykernel
pip_in --no-deps -e "$REPO"

"$VENV/bin/python" - <<'PY'
import warnings
warnings.filterwarnings("ignore")
import torch
assert torch.__version__.endswith("+cpu"), torch.__version__
from pysofi import pysofi  # noqa: F401
from suite2p.extraction import dcnv, extract, masks  # noqa: F401
import optimap.trace  # noqa: F401
from cellects.video.oscillations_tracking import OscillationsTracking  # noqa: F401
from cellector.utils import phase_correlation_zero  # noqa: F401
import fluoxr
print("peer venv ready:", torch.__version__, "fluoxr from", fluoxr.__file__)
PY
PYTHONPATH="$ALT/cellects-1.1.0" "$VENV/bin/python" -c \
    "from cellects.video.oscillations_functions import detect_oscillations_dynamics; print('cellects 1.1.0 OK')"
PYTHONPATH="$ALT/cellects-0.4.14" "$VENV/bin/python" -c \
    "from cellects.image_analysis.oscillations_functions import detect_oscillations_dynamics; print('cellects 0.4.14 OK')"
