#!/usr/bin/env bash
# clean.sh [IMAGE]: removes what the image tests leave or cache in podman's store: their
# containers and volumes (labelled mailer-image-test), compose projects of theirs (mailer-it-*),
# the image, every stand-in (label mailer.stand-in) and the layers only they used. The next
# `make image-test` starts from nothing (a cold run).
set -uo pipefail
image=${1:-mailer:local}
ids=$(podman ps --all --quiet --filter label=mailer-image-test)
[[ -n $ids ]] && podman rm --force --volumes --time 0 $ids >/dev/null
for project in $(podman ps --all --format '{{index .Labels "io.podman.compose.project"}}' | grep '^mailer-it-' | sort -u); do
    podman rm --force --volumes --time 0 $(podman ps --all --quiet --filter "label=io.podman.compose.project=$project") >/dev/null
    podman pod rm --force "pod_$project" >/dev/null 2>&1
    podman network rm --force "${project}_default" >/dev/null 2>&1
done
volumes=$(podman volume ls --quiet --filter label=mailer-image-test; podman volume ls --format '{{.Name}}' | grep '^mailer-it-')
[[ -n $volumes ]] && podman volume rm --force $volumes >/dev/null
podman image rm --force "$image" >/dev/null 2>&1
stand_ins=$(podman images --quiet --filter label=mailer.stand-in | sort -u)
[[ -n $stand_ins ]] && podman image rm --force $stand_ins >/dev/null 2>&1
podman image prune --force >/dev/null
echo "podman store: $(podman images --quiet | wc -l) image(s), $(podman ps --all --quiet | wc -l) container(s) left"
