#!/usr/bin/env bash
# Download the TensorRT Python bindings wheels that tests/trt/test_bindings_surface.py compares the fake
# tensorrt modules with (8.6, 10.3, 10.13, 11.1; bindings only, about 1 MB each, no native libraries).
# TensorRT 8.2 (JetPack 4.6, Jetson Nano) has no wheel to fetch: no 8.x bindings before 8.6.1 were ever
# published to PyPI (pip index versions tensorrt-bindings -> 8.6.1; tensorrt -> 8.6.1 and later; the 8.x
# nvidia-tensorrt wheels were on NVIDIA's own index only). The 8.2 fake is compared instead with
# tests/trt/tensorrt_8_2_1_surface.json, read from the 8.2.1 binding sources by tests/trt/sources_surface.py.
#
#   bash tests/trt/fetch_bindings.sh [PYTHON]      # PYTHON: the interpreter the tests run under (default: python3)
#
# Wheels go to $EDGE_TRT_WHEELS (default /tmp/edge-trt-wheels), never into the repository. A wheel already
# there is not fetched again. Offline, or where PyPI has no wheel for this Python/platform, it says so and
# exits 0: the surface tests then skip with that reason.
set -u
python="${1:-${PYTHON:-python3}}"
dest="${EDGE_TRT_WHEELS:-/tmp/edge-trt-wheels}"
mkdir -p "$dest" || { echo "fetch_bindings: cannot create $dest; the surface tests will skip"; exit 0; }
tag="$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])' 2>/dev/null)" || {
    echo "fetch_bindings: $python does not run; the surface tests will skip"; exit 0; }
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "fetch_bindings: the compared wheels are for Linux x86-64; the surface tests will skip"; exit 0 ;;
esac
# distribution  version  (keep in step with WHEELS in tests/trt/bindings_surface.py)
wheels="tensorrt_bindings 8.6.1
tensorrt_cu12_bindings 10.3.0
tensorrt_cu12_bindings 10.13.3.9
tensorrt_cu12_bindings 11.1.0.106"
fetched=0 present=0 missing=0
while read -r dist version; do
    if ls "$dest/$dist-$version-$tag-"*linux*_x86_64.whl >/dev/null 2>&1; then
        present=$((present + 1))
        continue
    fi
    if "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --timeout 15 --retries 1 --dest "$dest" "${dist//_/-}==$version" >/dev/null 2>&1; then
        fetched=$((fetched + 1))
    else
        missing=$((missing + 1))
        echo "fetch_bindings: no $dist==$version wheel for $tag (offline, or none published); its tests will skip"
    fi
done <<< "$wheels"
echo "fetch_bindings: $present already in $dest, $fetched downloaded, $missing unavailable"
exit 0
