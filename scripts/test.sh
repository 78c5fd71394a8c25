#!/usr/bin/env bash
# Run napari-segkit's test suite on a fresh Debian/Ubuntu machine, exactly as CI does.
#
#   bash scripts/test.sh                  # everything (creates .venv on first use)
#   bash scripts/test.sh tests/widgets    # arguments go to pytest
#   SEGKIT_TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/test.sh
#                                         # CPU-only torch (no CUDA libraries)
#   SEGKIT_NAPARI="napari==0.6.0" SEGKIT_VENV=.venv-oldest bash scripts/test.sh tests/widgets
#                                         # the oldest napari the plugin declares
#
# 1. The viewer tests need a virtual X server and Qt's xcb libraries (napari's own CI
#    list). As root with apt-get they are installed; otherwise the script prints the
#    exact command and stops.
# 2. A virtual environment (SEGKIT_VENV, default .venv) gets torch from
#    requirements/torch.txt, then the project with its testing extra.
# 3. pytest runs under xvfb-run (plain pytest would abort the interpreter: Qt finds no
#    display, and Qt's offscreen platform gives vispy no OpenGL context).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="xvfb xauth libdbus-1-3 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xinput0 \
libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libopengl0 libgl1 libegl1 libfontconfig1 x11-utils"
PYTHON=${PYTHON:-python3}
VENV=${SEGKIT_VENV:-.venv}

missing_system_packages() {
    command -v xvfb-run >/dev/null || { echo xvfb; return; }
    command -v dpkg-query >/dev/null || return 0
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

missing=$(missing_system_packages)
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "::: installing the Debian packages napari needs headless"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
    else
        echo "The viewer tests need these system packages, which are missing:" >&2
        echo "  sudo apt-get install -y $(echo $PACKAGES | tr -s ' ')" >&2
        echo "(Debian/Ubuntu; other systems: an X virtual framebuffer and Qt's xcb libraries)" >&2
        exit 1
    fi
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "napari-segkit needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version)); set PYTHON=" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "::: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
echo "::: torch (requirements/torch.txt) and the project with its testing extra"
python -m pip install -q -U pip
if [ -n "${SEGKIT_TORCH_INDEX:-}" ]; then
    python -m pip install -q -r requirements/torch.txt --index-url "$SEGKIT_TORCH_INDEX"
else
    python -m pip install -q -r requirements/torch.txt
fi
# shellcheck disable=SC2086
python -m pip install -q -e ".[testing]" ${SEGKIT_NAPARI:+"$SEGKIT_NAPARI"}
python -m pip list 2>/dev/null | grep -iE "^(napari|npe2|torch|torchvision|segmentation|zarr|dask|distributed|PyQt6) " || true

echo "::: pytest under a virtual X server"
exec xvfb-run -a python -m pytest "$@"
