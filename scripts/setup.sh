#!/usr/bin/env bash
# One-step, idempotent set-up of moco-cxr on Debian: system packages, npm
# packages, the native addon and the TypeScript build. Each step runs only when
# its inputs changed, so a second run on a ready machine takes seconds.
#
#   LIBTORCH=/path/to/libtorch   build against another libtorch (e.g. a CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- system packages ---------------------------------------------------------
# The tests write DICOM and PNG files with other encoders: pydicom, PIL, GDCM (gdcmconv) and DCMTK.
# chromium: the exported web page is tested in headless Chromium (through playwright-core).
# python3-protobuf: an independent reader checks the TensorBoard event files.
packages=(libopenblas0-pthread libgloo-dev python3-torch python3-torchvision python3-pydicom python3-pil libgdcm-tools dcmtk python3-protobuf chromium)
[ -z "${LIBTORCH:-}" ] && packages=(libtorch-dev "${packages[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- npm packages ------------------------------------------------------------
hash_of() { cat "$@" 2>/dev/null | sha1sum | cut -d' ' -f1; }
lock_hash=$(hash_of package-lock.json)
if [ ! -f node_modules/.setup-stamp ] || [ "$(cat node_modules/.setup-stamp)" != "$lock_hash" ]; then
  say "installing npm packages"
  # Scripts are skipped: the addon is built below, under this script's control.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.setup-stamp
fi

# --- native addon ------------------------------------------------------------
native_hash=$( { hash_of binding.gyp $(find native -type f | sort); echo "${LIBTORCH:-system}"; } | sha1sum | cut -d' ' -f1)
if [ ! -f build/Release/moco_torch.node ] || [ ! -f build/.setup-stamp ] || [ "$(cat build/.setup-stamp)" != "$native_hash" ]; then
  say "building the native addon against ${LIBTORCH:-the system libtorch} (about a minute)"
  npx node-gyp rebuild -j "$(nproc)" --loglevel=error >/dev/null
  echo "$native_hash" > build/.setup-stamp
fi

# --- TypeScript --------------------------------------------------------------
ts_hash=$( { find src -type f -name '*.ts' | sort | xargs cat; cat tsconfig.json tsconfig.build.json; } | sha1sum | cut -d' ' -f1)
if [ ! -f dist/.setup-stamp ] || [ "$(cat dist/.setup-stamp)" != "$ts_hash" ]; then
  say "compiling TypeScript"
  rm -rf dist
  npx tsc -p tsconfig.build.json
  echo "$ts_hash" > dist/.setup-stamp
fi
