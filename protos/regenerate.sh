#!/usr/bin/env bash
# Regenerate protos/fedvault_pb2.py and .pyi from protos/fedvault.proto.
# Run from anywhere; uses the project's venv when present. The generated files
# are committed; tests/unit/test_protos.py runs this same command into a tmp dir
# and fails when the committed files differ.
#   OUT_DIR=/some/dir protos/regenerate.sh   writes there instead of protos/
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
OUT_DIR="${OUT_DIR:-protos}"
"$PYTHON" -m grpc_tools.protoc -I protos --python_out="$OUT_DIR" --pyi_out="$OUT_DIR" protos/fedvault.proto
