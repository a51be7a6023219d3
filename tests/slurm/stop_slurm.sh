#!/usr/bin/env bash
# Stops every daemon tests/slurm/install_slurm.sh started (slurmd, slurmctld, slurmdbd,
# mariadbd, munged: the reverse order), each by the pid in its pid file under
# $WAKEPREP_SLURM_DIR, then removes that folder and the /etc/slurm/slurm.conf symlink
# into it. Debian's packages stay installed.
# Safe to run when nothing runs; never touches a process it did not start.
set -uo pipefail

STATE=${WAKEPREP_SLURM_DIR:-/tmp/wakeprep-slurm}
[ -d "$STATE" ] || exit 0
log() { echo "stop_slurm: $*" >&2; }

stop() {  # name: TERM the pid in $STATE/run/<name>.pid, then KILL after 20 s
    local pidfile="$STATE/run/$1.pid" pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidfile"; return 0; fi
    # only a process whose command is this daemon: a stale pid file must not kill a stranger
    if ! grep -qa "$1" "/proc/$pid/cmdline" 2>/dev/null; then rm -f "$pidfile"; return 0; fi
    log "stopping $1 ($pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.5
    done
    log "$1 ($pid) ignored TERM for 20 s; killing it"
    kill -KILL "$pid" 2>/dev/null
    rm -f "$pidfile"
}

# Jobs still running on the node end with their slurmstepd when slurmd and slurmctld go;
# cancel them first so that nothing keeps writing into the test folders.
if [ -f "$STATE/etc/slurm.conf" ] && command -v scancel >/dev/null; then
    SLURM_CONF="$STATE/etc/slurm.conf" timeout 10 scancel --quiet --full --state=RUNNING -u "$(id -un)" 2>/dev/null
    SLURM_CONF="$STATE/etc/slurm.conf" timeout 10 scancel --quiet -u "$(id -un)" 2>/dev/null
fi

stop slurmd
stop slurmctld
stop slurmdbd
stop mariadbd
stop munged

# slurmstepd processes of killed jobs, started by our slurmd (their SLURM_CONF points here)
for pid in $(pgrep -x slurmstepd 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_CONF=$STATE/etc/slurm.conf"; then
        kill -KILL "$pid" 2>/dev/null
    fi
done

if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$STATE/etc/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
fi
rm -rf "$STATE"
log "stopped and removed $STATE"
