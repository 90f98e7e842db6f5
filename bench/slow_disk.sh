#!/usr/bin/env bash
# Run a command with its own disk writes throttled, to measure a "slow-disk day" on demand:
#
#   sudo bench/slow_disk.sh 3000 ../.venv/bin/python campaign.py      (from bench/)
#
# The command and its children go into a cgroup whose writes to the disk holding bench/ are
# limited to IOPS per second (cgroup v2 io.max, else v1 blkio.throttle). What it throttles is
# the I/O the processes submit themselves (their fsyncs' writeback); the kernel's own flusher
# and journal threads stay outside, so read the result as "a disk that slow for our fsyncs".
# Needs root and a cgroup hierarchy it may write; the cgroup is removed afterwards.
set -euo pipefail

if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: slow_disk.sh IOPS COMMAND [ARG...]" >&2
    exit 2
fi
iops=$1
shift

here=$(cd "$(dirname "$0")" && pwd)
source_dev=$(findmnt -no SOURCE --target "$here")
disk=$(lsblk -no PKNAME "$source_dev" 2>/dev/null | head -1)
[[ -n $disk ]] || disk=$(basename "$source_dev")
majmin=$(cat "/sys/class/block/$disk/dev")
name="clmmd-slow-disk-$$"

if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    group=/sys/fs/cgroup/$name
    mkdir "$group"
    echo "$majmin wiops=$iops" >"$group/io.max"
else
    group=/sys/fs/cgroup/blkio/$name
    mkdir "$group"
    echo "$majmin $iops" >"$group/blkio.throttle.write_iops_device"
fi
trap 'rmdir "$group" 2>/dev/null || true' EXIT

echo "writes to $disk ($majmin) limited to $iops per second for: $*" >&2
# The subshell joins the group and becomes the command: everything it starts stays inside.
(echo "$BASHPID" >"$group/cgroup.procs" && exec "$@")
