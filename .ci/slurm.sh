#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for `pytest -m slurm` (CI runs as root, no systemd).
#
#   .ci/slurm.sh start    install slurm-wlm + munge if missing, write the config, start munged,
#                         slurmctld and slurmd by hand, wait until `sinfo` shows the node idle
#   .ci/slurm.sh stop     kill exactly the daemons `start` started (their PIDs are recorded)
#   .ci/slurm.sh status   the recorded daemons and `sinfo`
#
# Both are idempotent: `start` on a running cluster checks it and returns; `stop` without one
# does nothing. State (spool, controller state, logs, PID files) lives in $COGNET_SLURM_DIR
# (default /tmp/cognet-slurm). The config goes to /etc/slurm/slurm.conf, where every Slurm
# client (sbatch, squeue, submitit) finds it; a slurm.conf not written by this script is never
# overwritten. No accounting: sacct is unavailable, like on many small clusters.
#
# Node: this machine's real hostname, CPUs=2 (or fewer, if it has fewer), RealMemory 90 % of what
# `slurmd -C` reports; one partition `debug` (Default=YES); proctrack/linuxproc, task/none,
# select/cons_tres with CR_Core; MinJobAge=60 s (a finished job stays visible to scontrol that long).
set -euo pipefail

DIR=${COGNET_SLURM_DIR:-/tmp/cognet-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by cognet .ci/slurm.sh"
WAIT_S=${COGNET_SLURM_WAIT_S:-60}

die() { echo "slurm.sh: error: $*" >&2; exit 1; }
say() { echo "slurm.sh: $*" >&2; }

# pid_alive NAME: the PID recorded for daemon NAME is alive and is that daemon
pid_alive() {
    local f="$DIR/pids/$1" pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$1" || return 1
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
        || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "slurm-wlm/munge are missing and installing them needs root"
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1; then
        apt-get update -q >>"$DIR/apt.log" 2>&1 || die "apt-get update failed (see $DIR/apt.log)"
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/apt.log" 2>&1 \
            || die "apt-get install ${missing[*]} failed (see $DIR/apt.log)"
    fi
}

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    # slurmctld and slurmd must resolve the node name (fresh containers sometimes cannot)
    if ! getent hosts "$host" >/dev/null; then
        say "$host does not resolve; adding '127.0.0.1 $host' to /etc/hosts"
        echo "127.0.0.1 $host" >>/etc/hosts
    fi
    cpus=$(nproc)
    ((cpus > 2)) && cpus=2
    mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
    [[ -n $mem ]] || die "slurmd -C did not report RealMemory"
    mem=$((mem * 9 / 10))
    local topo=""
    # the real socket/core layout when the node keeps all its CPUs (avoids a reconfiguration warning)
    if (($(nproc) <= 2)); then
        topo=$(slurmd -C 2>/dev/null | grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' | head -1 || true)
    fi
    if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; move it away or stop that cluster first"
    fi
    mkdir -p /etc/slurm "$DIR"/{state,spool,log,pids}
    cat >"$CONF.tmp" <<EOF
$MARK ($(date -u +%FT%TZ)); state in $DIR
ClusterName=cognet
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=60
KillWait=5
SlurmdTimeout=60
InactiveLimit=0
NodeName=$host CPUs=$cpus ${topo} RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    echo "$host"
}

# start_daemon NAME CMD...: run CMD in the foreground mode of the daemon, in the background
start_daemon() {
    local name=$1
    shift
    if pid_alive "$name"; then
        say "$name already running (pid $(<"$DIR/pids/$name"))"
        return 0
    fi
    nohup "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
    echo $! >"$DIR/pids/$name"
    sleep 0.5
    pid_alive "$name" || die "$name exited at once: $(tail -5 "$DIR/log/$name.out" "$DIR/log/$name.log" 2>/dev/null)"
    say "started $name (pid $(<"$DIR/pids/$name"))"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        pid_alive munged || say "using the munged that is already running (not ours; stop leaves it)"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --force >/dev/null
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    chmod 0755 /run/munge
    local runas=()
    id munge >/dev/null 2>&1 && runas=(setpriv --reuid=munge --regid=munge --init-groups)
    start_daemon munged "${runas[@]}" /usr/sbin/munged --foreground
    for _ in $(seq 1 50); do munge_works && return 0; sleep 0.2; done
    die "munged started but munge -n | unmunge fails (see $DIR/log/munged.out)"
}

wait_idle() {
    local host=$1 state=""
    for _ in $(seq 1 $((WAIT_S * 2))); do
        state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1 || true)
        case $state in
            idle|mixed|allocated) say "node $host is $state"; return 0 ;;
            down*|drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "node $host not idle after ${WAIT_S} s (sinfo says '${state:-nothing}'); logs: $DIR/log/"
}

start() {
    mkdir -p "$DIR"/{state,spool,log,pids}
    install_packages
    local host
    host=$(write_conf)
    start_munge
    start_daemon slurmctld /usr/sbin/slurmctld -D -f "$CONF"
    start_daemon slurmd /usr/sbin/slurmd -D -f "$CONF"
    wait_idle "$host"
}

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        if pid_alive "$name"; then
            pid=$(<"$DIR/pids/$name")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
            [[ -d /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
            say "stopped $name (pid $pid)"
        fi
        rm -f "$DIR/pids/$name"
    done
}

status() {
    local name
    for name in munged slurmctld slurmd; do
        if pid_alive "$name"; then echo "$name: running (pid $(<"$DIR/pids/$name"))"; else echo "$name: not running"; fi
    done
    sinfo 2>&1 || true
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
