#!/usr/bin/env bash
# ensure-image.sh REF...: makes each image present in podman's store. One already there is used
# as it is; otherwise it is pulled; only when that fails (no image registry reachable, as on the
# machines this project is built and tested on) is a stand-in built here, from Debian's packages
# and PyPI, under the very name REF, labelled mailer.stand-in="<what it really is>":
#   python:*          Debian bookworm (minbase) with Debian's python3 (3.11.2), by debootstrap
#   postgres:*        Debian's PostgreSQL (15), redis:* Debian's Redis (7.0), on one debootstrap
#   motoserver/moto:V moto[server]==V from PyPI on the python stand-in
# The Debian mirror is the one this machine's apt uses, read at run time and written nowhere.
# Needs: podman, debootstrap (apt-get install podman runc debootstrap), CONTAINERS_CONF set up
# by podman/containers-conf.sh where podman's defaults do not run here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# The name podman stores a reference under: docker.io/library/python:3.11 for python:3.11.
normalize() {
    local ref=$1 first=${1%%/*}
    if [[ $ref != */* ]]; then
        echo "docker.io/library/$ref"
    elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
        echo "docker.io/$ref"
    else
        echo "$ref"
    fi
}

# The CA bundle of this machine, for pip inside a build: outbound HTTPS may pass a proxy that
# only this bundle trusts. Mounted read-only for the build, never part of the image.
ca_mount() {
    local bundle=/etc/ssl/certs/ca-certificates.crt
    [[ -f $bundle ]] && echo "--volume=$bundle:$bundle:ro"
}

debian_mirror() {
    local mirror
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk '$2 == "bookworm" {print $1; exit}')
    [[ -n $mirror ]] || { echo "ensure-image: no Debian bookworm mirror in this machine's apt sources" >&2; return 1; }
    echo "$mirror"
}

# debootstrap_import NAME PACKAGES DESCRIPTION [podman import --change ...]
debootstrap_import() {
    local name=$1 packages=$2 description=$3 rootfs
    shift 3
    command -v debootstrap >/dev/null || { echo "ensure-image: debootstrap is needed (apt-get install debootstrap)" >&2; return 1; }
    rootfs=$(mktemp -d /var/tmp/mailer-rootfs.XXXXXX)
    scratch+=("$rootfs" "$rootfs.log")
    echo "ensure-image: debootstrap bookworm with $packages for $name" >&2
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$(debian_mirror)" > "$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; return 1; }
    # As Debian's slim images: no package lists or downloaded packages, no documentation but the
    # copyright files, no manuals or translations; and no apt source (it named this machine's mirror).
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/etc/apt/sources.list "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    tar -C "$rootfs" -c . | podman import --quiet --change "LABEL mailer.stand-in=$description" \
        --change "ENV LANG=C.UTF-8" "$@" - "$name" >/dev/null
}

scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT

services_base=localhost/mailer-stand-in/debian-services:bookworm

stand_in() {
    local ref=$1 repo tag
    repo=${ref%:*} tag=${ref##*:}
    case "$repo" in
        docker.io/library/python)
            debootstrap_import "$ref" python3,python3-venv,python-is-python3,ca-certificates \
                "Debian bookworm with Debian's python3 (3.11.2), debootstrap minbase" --change 'CMD ["python3"]'
            ;;
        docker.io/library/postgres | docker.io/library/redis)
            podman image exists "$services_base" || debootstrap_import "$services_base" postgresql,redis-server \
                "Debian bookworm with Debian's PostgreSQL and Redis, debootstrap minbase"
            local what=${repo##*/}
            podman build --quiet --pull=never --build-arg BASE="$services_base" \
                --label "mailer.stand-in=Debian's $what package (bookworm), not $ref" \
                -t "$ref" "$here/stand-ins/$what" >/dev/null
            ;;
        docker.io/motoserver/moto)
            local python
            python=$(normalize "$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$here/../Dockerfile")")
            ensure "$python"
            # shellcheck disable=SC2046
            podman build --quiet --pull=never $(ca_mount) --build-arg BASE="$python" --build-arg MOTO_VERSION="$tag" \
                --label "mailer.stand-in=moto[server]==$tag from PyPI on $python" \
                -t "$ref" "$here/stand-ins/moto" >/dev/null
            ;;
        *)
            echo "ensure-image: $ref cannot be pulled here and has no stand-in" >&2
            return 1
            ;;
    esac
    echo "ensure-image: $ref is a stand-in: $(podman image inspect --format '{{index .Labels "mailer.stand-in"}}' "$ref")" >&2
}

ensure() {
    local ref
    ref=$(normalize "$1")
    podman image exists "$ref" && return 0
    if timeout 300 podman pull --quiet "$ref" >/dev/null 2>&1; then
        return 0
    fi
    echo "ensure-image: $ref could not be pulled (no registry reachable?): building a stand-in" >&2
    stand_in "$ref"
}

for ref in "$@"; do
    ensure "$ref"
done
