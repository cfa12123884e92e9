#!/bin/sh
# Writes the podman configuration this machine kind needs to the file named, for CONTAINERS_CONF
# (the Makefile points it there; nothing outside the checkout is changed):
# - runc: crun refuses this kernel's hybrid cgroup setup ("cgroups in hybrid mode not supported");
# - default ulimits: podman's defaults are above what this sandbox lets a process raise them to
#   ("setrlimit RLIMIT_NOFILE: Operation not permitted"), so nofile is this shell's hard limit;
# - no systemd here: cgroupfs, events to a file (health checks are run by `podman healthcheck run`).
set -eu
out="$1"
mkdir -p "$(dirname "$out")"
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
cat > "$out.new" <<CONF
# Written by podman/containers-conf.sh; see there.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$out.new" "$out"
