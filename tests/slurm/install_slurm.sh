#!/usr/bin/env bash
# A one-node SLURM cluster with job accounting on this machine, for tests/test_slurm.py.
#
# Installs Debian's SLURM (slurmctld, slurmd, slurmdbd, client tools), MUNGE and MariaDB,
# then starts, without systemd and in this order: munged, mariadbd, slurmdbd, slurmctld,
# slurmd. Everything it writes or starts lives under $WAKEPREP_SLURM_DIR (default
# /tmp/wakeprep-slurm): its own MUNGE key and socket, its own MariaDB data folder on
# 127.0.0.1, SLURM's config, spool, state, logs and pid files. One thing lives outside it:
# /etc/slurm/slurm.conf, SLURM's default config path, as a symlink to the config in that
# folder. The slurm-jobstep executor plugin (which runs each rule inside its SLURM job)
# removes SLURM_CONF from the environment of the `srun` it starts, so `srun` inside a job
# finds the cluster only through the default path. The script refuses to run when
# /etc/slurm/slurm.conf exists and is not its own symlink (a configured SLURM is never
# touched); stop_slurm.sh removes the symlink. $WAKEPREP_SLURM_DIR/env.sh sets SLURM_CONF
# and the account and partition names: `source` it.
#
# Idempotent: a daemon that already runs from this folder is left alone; the accounting
# entries are added only when missing. Needs root and apt-get. Stop and remove it all with
# tests/slurm/stop_slurm.sh.
#
# Settings (environment):
#   WAKEPREP_SLURM_DIR        state folder                     [/tmp/wakeprep-slurm]
#   WAKEPREP_SLURM_ACCOUNT    account created for the user     [wakeprep_ci]
#   WAKEPREP_SLURM_PARTITION  the one partition                [ci]
#   WAKEPREP_SLURM_PORT       first of four TCP ports on 127.0.0.1: slurmctld, slurmd,
#                             slurmdbd, mariadb                [16817]
#   WAKEPREP_SLURM_NO_APT=1   skip apt-get (packages already installed)
set -euo pipefail

STATE=${WAKEPREP_SLURM_DIR:-/tmp/wakeprep-slurm}
ACCOUNT=${WAKEPREP_SLURM_ACCOUNT:-wakeprep_ci}
PARTITION=${WAKEPREP_SLURM_PARTITION:-ci}
PORT=${WAKEPREP_SLURM_PORT:-16817}
CLUSTER=wakeprep
NODE=wakeprep1
CTLD_PORT=$PORT
SLURMD_PORT=$((PORT + 1))
DBD_PORT=$((PORT + 2))
DB_PORT=$((PORT + 3))
# Users given an association with the account: root, and the user who called sudo.
RUN_USERS=$(printf "%s\n" "$(id -un)" ${SUDO_USER:-} | sort -u)

log() { echo "install_slurm: $*" >&2; }
die() { echo "install_slurm: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (it installs packages and runs the SLURM daemons as root)"

# ---------------------------------------------------------------- packages
PACKAGES="slurmctld slurmd slurmdbd slurm-client munge mariadb-server mariadb-client"
if [ "${WAKEPREP_SLURM_NO_APT:-0}" != 1 ]; then
    command -v apt-get >/dev/null || die "no apt-get here: install $PACKAGES yourself and set WAKEPREP_SLURM_NO_APT=1"
    missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        log "installing:$missing"
        # Package scripts must not start the system's own services: this script starts
        # private instances below. A policy-rc.d that denies every start does that; one
        # that already exists is left as it is.
        made_policy=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        trap '[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
        if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
        trap - EXIT
    fi
fi
export PATH="$PATH:/usr/sbin:/sbin"
for cmd in munged mungekey mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sacctmgr sinfo sbatch sacct; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found after installing $PACKAGES"
done

# ---------------------------------------------------------------- layout and configs
ETC_CONF=/etc/slurm/slurm.conf
if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$STATE/etc/slurm.conf" ]; then
    :
elif [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
    die "$ETC_CONF exists and is not this script's symlink: a SLURM is configured here; not touching it"
fi
mkdir -p "$STATE"/{etc,log,run,spool/ctld,spool/d,munge,db}
chmod 755 "$STATE"
chmod 755 "$STATE/munge"  # clients need to reach the socket; the key itself is 0400

# The node as slurmd sees it (CPUs, sockets, cores, threads, memory), under our node name.
hw=$(slurmd -C | head -n1)
field() { echo "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CPUS=$(field CPUs)
MEM=$(field RealMemory)
[ -n "$CPUS" ] && [ -n "$MEM" ] || die "could not read the hardware from 'slurmd -C': $hw"
MEM=$((MEM * 95 / 100))  # a little under what slurmd reports, so the node never drains as 'Low RealMemory'

DB_PASS_FILE="$STATE/db/.slurm_password"
[ -s "$DB_PASS_FILE" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DB_PASS_FILE"; chmod 600 "$DB_PASS_FILE"; }
DB_PASS=$(cat "$DB_PASS_FILE")
MUNGE_SOCKET="$STATE/munge/munge.socket"

write_if_changed() {  # path mode: content on stdin; keeps the file (and its mtime) when equal
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod "$2" "$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

write_if_changed "$STATE/etc/slurm.conf" 644 <<EOF
# Written by tests/slurm/install_slurm.sh: one node on 127.0.0.1, with accounting.
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
# No cgroups (no systemd, possibly a container): plain process tracking.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Accounting through slurmdbd: the executor plugin reads job states with sacct.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# For slurmdbd connections SLURM takes the MUNGE socket from here, not from AuthInfo.
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageEnforce=associations
# The plugin puts the rule and wildcards in --comment; keep it for sacct -o Comment.
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
MinJobAge=300
InactiveLimit=0
KillWait=10
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

write_if_changed "$STATE/etc/cgroup.conf" 644 <<EOF
# Written by tests/slurm/install_slurm.sh. proctrack/linuxproc and task/none use no
# cgroups; this file only keeps tools that look for it quiet.
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
EOF

write_if_changed "$STATE/etc/slurmdbd.conf" 600 <<EOF
# Written by tests/slurm/install_slurm.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

write_if_changed "$STATE/env.sh" 644 <<EOF
# source this file to use the test cluster (written by tests/slurm/install_slurm.sh)
export SLURM_CONF=$STATE/etc/slurm.conf
export WAKEPREP_SLURM_ACCOUNT=$ACCOUNT
export WAKEPREP_SLURM_PARTITION=$PARTITION
export WAKEPREP_SLURM_CLUSTER=$CLUSTER
EOF
export SLURM_CONF="$STATE/etc/slurm.conf"
if [ ! -L "$ETC_CONF" ]; then
    mkdir -p /etc/slurm
    ln -s "$STATE/etc/slurm.conf" "$ETC_CONF"
fi

# ---------------------------------------------------------------- helpers
alive() {  # pidfile: is that process running?
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}
wait_for() {  # seconds description command...: retry the command until it succeeds
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { log "gave up waiting for $what ($secs s); logs in $STATE/log"; tail -n 30 "$STATE"/log/*.log >&2 || true; exit 1; }
        sleep 0.5
    done
}

# ---------------------------------------------------------------- munged
if ! alive "$STATE/run/munged.pid"; then
    [ -s "$STATE/munge/munge.key" ] || mungekey --create --keyfile="$STATE/munge/munge.key" --bits=1024
    chmod 400 "$STATE/munge/munge.key"
    log "starting munged"
    munged --socket="$MUNGE_SOCKET" --key-file="$STATE/munge/munge.key" \
        --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
        --seed-file="$STATE/munge/munged.seed" --force
fi
wait_for 20 munged sh -c "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"

# ---------------------------------------------------------------- mariadbd (private data folder)
DB_SOCKET="$STATE/db/mysqld.sock"
db() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot "$@"; }
if ! alive "$STATE/run/mariadbd.pid"; then
    if [ ! -d "$STATE/db/data/mysql" ]; then
        log "initialising MariaDB in $STATE/db/data"
        mariadb-install-db --no-defaults --user=root --datadir="$STATE/db/data" \
            --auth-root-authentication-method=socket --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 \
            || { tail -n 30 "$STATE/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
    fi
    log "starting mariadbd on 127.0.0.1:$DB_PORT"
    # innodb settings keep its memory and files small; the database holds a few rows.
    nohup mariadbd --no-defaults --user=root --datadir="$STATE/db/data" --socket="$DB_SOCKET" \
        --pid-file="$STATE/run/mariadbd.pid" --log-error="$STATE/log/mariadbd.log" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
        --innodb-lock-wait-timeout=900 >/dev/null 2>&1 &
fi
wait_for 60 mariadbd db -e "SELECT 1"
db <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF

# ---------------------------------------------------------------- slurmdbd
if ! alive "$STATE/run/slurmdbd.pid"; then
    log "starting slurmdbd on 127.0.0.1:$DBD_PORT"
    slurmdbd
fi
wait_for 60 slurmdbd sacctmgr -n list cluster

# The cluster must exist in the database before slurmctld registers with it.
if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# ---------------------------------------------------------------- slurmctld, slurmd
if ! alive "$STATE/run/slurmctld.pid"; then
    log "starting slurmctld on 127.0.0.1:$CTLD_PORT"
    slurmctld
fi
wait_for 60 slurmctld scontrol ping
if ! alive "$STATE/run/slurmd.pid"; then
    log "starting slurmd ($NODE: $CPUS CPUs, $MEM MB)"
    slurmd -N "$NODE"
fi

# ---------------------------------------------------------------- accounting entries
if [ -z "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ]; then
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="wakeprep CI" Organization=wakeprep >/dev/null
fi
for user in $RUN_USERS; do
    if [ -z "$(sacctmgr -n -P list association cluster="$CLUSTER" account="$ACCOUNT" user="$user" format=user)" ]; then
        sacctmgr -i add user "$user" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
    fi
done

# ---------------------------------------------------------------- ready?
node_idle() { [ "$(sinfo -h -n "$NODE" -o '%t' | tr -d ' *')" = idle ]; }
wait_for 60 "node $NODE idle" node_idle
# slurmctld learns about new associations from slurmdbd asynchronously: wait until a job
# under the account is accepted (--test-only schedules nothing).
wait_for 30 "association $(id -un)/$ACCOUNT in slurmctld" \
    sbatch --test-only -A "$ACCOUNT" -p "$PARTITION" --wrap true
log "ready: $(sinfo --version), partition $PARTITION, account $ACCOUNT; source $STATE/env.sh"
