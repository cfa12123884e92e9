#!/usr/bin/env bash
# build-image.sh NAME: the production image, built with podman exactly from the Dockerfile (what
# `make image` runs). The base image the Dockerfile names comes from the store, a registry, or,
# where none is reachable, a stand-in built here (podman/ensure-image.sh says which).
#   --format docker: the OCI format has no HEALTHCHECK, and podman would drop the Dockerfile's.
#   --pull=never:    the base was made present just before; nothing else is fetched.
#   the CA bundle:   mounted read-only for pip during the build, never part of the image.
# A plain `docker build -t mailer .` builds the same Dockerfile where Docker and a registry are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
name=${1:?usage: build-image.sh NAME}
base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$root/Dockerfile")
"$here/ensure-image.sh" "$base"
mounts=()
bundle=/etc/ssl/certs/ca-certificates.crt
[[ -f $bundle ]] && mounts+=("--volume=$bundle:$bundle:ro")
podman build --format docker --pull=never "${mounts[@]}" --tag "$name" "$root"
stand_in=$(podman image inspect --format '{{index .Labels "mailer.stand-in"}}' "$name")
size=$(podman image inspect --format '{{.Size}}' "$name")
echo "built $name: $((size / 1000000)) MB; base $base${stand_in:+ (stand-in: $stand_in)}"
