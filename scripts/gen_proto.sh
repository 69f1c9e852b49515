#!/usr/bin/env bash
# Regenerate the committed protobuf code of fivegmc from its .proto files.
#
# The generator is pinned: generated code records the protoc version that produced it and
# checks the protobuf runtime against it at import time, so everybody must generate with the
# same grpcio-tools. Install the pin into the venv with:
#
#     .venv/bin/pip install grpcio-tools==1.85.1
#
# grpcio-tools 1.85.1 bundles libprotoc 35.1; its output needs the protobuf runtime >= 7.35.1
# (< 8). tests/unit/test_cdr.py reads GRPCIO_TOOLS_PIN below and checks that the committed files
# are exactly what this script produces.
#
# Usage: scripts/gen_proto.sh [OUTPUT_DIR]   (default: the repository root, i.e. in place)
set -euo pipefail

GRPCIO_TOOLS_PIN=1.85.1
PROTOS=(fivegmc/obs/cdr.proto)

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo}"
python="${PYTHON:-$repo/.venv/bin/python}"

installed="$("$python" -c 'from importlib.metadata import version; print(version("grpcio-tools"))' 2>/dev/null || true)"
if [[ "$installed" != "$GRPCIO_TOOLS_PIN" ]]; then
  echo "gen_proto.sh: grpcio-tools ${installed:-not installed}, the pin is $GRPCIO_TOOLS_PIN" >&2
  echo "  install it with: $python -m pip install grpcio-tools==$GRPCIO_TOOLS_PIN" >&2
  exit 1
fi

mkdir -p "$out"
cd "$repo"
# -I is the repository root so the descriptor's file name is "fivegmc/obs/cdr.proto".
# grpc_tools adds its bundled well-known types (google/protobuf/timestamp.proto) itself.
"$python" -m grpc_tools.protoc -I . --python_out="$out" --pyi_out="$out" "${PROTOS[@]}"
