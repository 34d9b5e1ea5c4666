#!/usr/bin/env bash
# End-to-end test of the SLURM profile on a real one-node Slurm cluster on this machine.
#
#   sudo tests/slurm/run_slurm_test.sh        (root on Debian, as in CI; about 3-6 minutes)
#
# Installs slurm-wlm and munge from Debian's packages if missing, configures slurmctld + slurmd
# on localhost (no accounting database: the plugin polls squeue), runs a tiny study through
#   snakemake --workflow-profile profiles/slurm
# checks that every job went through sbatch and that the outputs equal a local run's, then
# stops the daemons it started. Exit status 0 = passed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$( [ -x "$repo/.venv/bin/python" ] && echo "$repo/.venv/bin/python" || echo python3 )}
work=$(mktemp -d /tmp/modgap-slurm.XXXXXX)
host=$(hostname -s)
started_at=$(date +%s)
pids=()

log() { printf '[slurm-test] %s\n' "$*"; }
fail() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages and starts daemons)"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# --- munge --------------------------------------------------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 400 /etc/munge/munge.key
munged --force --pid-file="$work/munged.pid" 2>/dev/null || fail "munged did not start"
sleep 1
pids+=("$(cat "$work/munged.pid")")

# --- slurm ---------------------------------------------------------------------------------
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
mkdir -p /etc/slurm "$work/spool/ctld" "$work/spool/d" "$work/log"
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=modgap-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$work/spool/ctld
SlurmdSpoolDir=$work/spool/d
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldDebug=info
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld || fail "slurmctld did not start (see $work/log/slurmctld.log)"
slurmd || fail "slurmd did not start (see $work/log/slurmd.log)"
for _ in $(seq 30); do
  [ -s "$work/slurmctld.pid" ] && [ -s "$work/slurmd.pid" ] && break
  sleep 1
done
pids+=("$(cat "$work/slurmctld.pid")" "$(cat "$work/slurmd.pid")")
for _ in $(seq 30); do
  sinfo -h -o "%t" 2>/dev/null | grep -qE "^idle" && break
  sleep 1
done
sinfo -h -o "%t" | grep -qE "^idle" || fail "node not idle: $(sinfo 2>&1)"
log "cluster up: $(sinfo -h -o '%P %D %c %m %t')"

# --- the study, locally and through sbatch ---------------------------------------------------
cat > "$work/tiny.yaml" <<'EOF'
seeds: [0]
datasets:
  embedded: {source: embedded, n_samples: 120}
experiments:
  - {name: pair, dataset: embedded, modalities: [image, text], methods: [clip_lt, ours]}
model: {width: 16, depth: 1, heads: 2, embed_dim: 8}
train: {epochs: 2, batch_size: 32, progress: never}
evaluate: {sweep_strengths: [0.0, 1.0], kmeans_n_init: 2}
dose_response: {experiment: null}
EOF
run_snakemake() {
  local directory=$1; shift
  (cd "$repo" && "$python" -m snakemake -s "$repo/Snakefile" --directory "$directory" \
    --configfile "$work/tiny.yaml" "$@")
}

log "reference run on the local executor"
run_snakemake "$work/local" --cores 2 >"$work/local.log" 2>&1 || { tail -30 "$work/local.log"; fail "local run"; }

log "run through the SLURM executor (profiles/slurm)"
slurm_started=$(date +%s)
# The test node has no GPUs and no accounts: keep the profile, override those two things.
run_snakemake "$work/slurm" --workflow-profile "$repo/profiles/slurm" \
  --slurm-status-command squeue --slurm-no-account --slurm-init-seconds-before-status-checks 5 \
  --default-resources slurm_partition=debug mem_mb=2000 runtime=30 \
  --set-resources train:gpu=0 \
  >"$work/slurm.log" 2>&1 || { tail -40 "$work/slurm.log"; fail "SLURM run"; }
slurm_seconds=$(( $(date +%s) - slurm_started ))

# --- checks --------------------------------------------------------------------------------------
planned=$(grep -oE "^[0-9]+ of [0-9]+ steps \(100%\) done" "$work/slurm.log" | tail -1 | awk '{print $3}')
local_jobs=$(grep -cE "^localrule " "$work/slurm.log" || true)
submitted=$(grep -c "_slurm_rpc_submit_batch_job: JobId=" "$work/log/slurmctld.log" || true)
expected=$(( planned - local_jobs ))
log "jobs: $planned in the DAG, $local_jobs run locally (rule all), $submitted submitted with sbatch"
[ "$submitted" -eq "$expected" ] || fail "expected $expected sbatch submissions, slurmctld recorded $submitted"
[ "$submitted" -gt 10 ] || fail "too few jobs went through SLURM ($submitted)"

log "job states (squeue, finished jobs kept for MinJobAge):"
squeue -h -t all -o "%.6i %.10T %.10M  %k" | sort -n | sed 's/^/    /'
bad_states=$(squeue -h -t all -o "%T" | grep -vc COMPLETED || true)
[ "$bad_states" -eq 0 ] || fail "$bad_states jobs did not complete"

for file in tables/main.csv tables/ablation.csv claims.txt; do
  cmp -s "$work/local/results/$file" "$work/slurm/results/$file" || fail "results/$file differs from the local run"
done
for file in "$work"/local/results/metrics/*/*.json; do
  cmp -s "$file" "${file/\/local\//\/slurm\/}" || fail "${file#$work/local/} differs from the local run"
done
log "outputs equal the local run's (tables, claims, every metrics file)"
log "PASSED: $submitted jobs through sbatch in ${slurm_seconds}s (whole test $(( $(date +%s) - started_at ))s)"
rm -rf "$work"
