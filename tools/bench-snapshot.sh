#!/usr/bin/env bash
# Snapshot export/import benchmark (tools/BENCHMARKS-snapshot.md).
#
#   tools/bench-snapshot.sh WORKDIR ACCOUNTS
#
# Makes (once) a `metis db synth` state of ACCOUNTS accounts in WORKDIR,
# measures the sequential bandwidth of WORKDIR's filesystem with dd (median
# of three runs), then
# exports the state to a snapshot and imports it into a new data dir, each
# with a cold page cache (when /proc/sys/vm/drop_caches is writable).
# Prints wall time, peak RSS (VmHWM), bytes read and written by the
# process, and throughput as a fraction of the dd bandwidth:
#   export: bytes read from the database per second against dd's sequential
#           read (the export's input), and snapshot bytes written per second
#           against dd's sequential write;
#   import: bytes of the imported database per second against dd's
#           sequential write (the import's output), and every byte the
#           process wrote per second.
# The load average before each run is printed: the machine may be shared.
set -euo pipefail
W=$1
N=$2
METIS=${METIS:-$(dirname "$0")/../target/release/metis}
[ -x "$METIS" ] || METIS=${CARGO_TARGET_DIR:-target}/release/metis
mkdir -p "$W"
SRC=$W/src-$N
SNAP=$W/state-$N.snap
DST=$W/dst-$N

drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# run NAME CMD...: runs CMD, samples /proc/PID/io, prints "NAME wall_s peak_kib read_bytes write_bytes"
run() {
  local name=$1; shift
  local tf; tf=$(mktemp)
  /usr/bin/time -f "%e %M %U %S" -o "$tf" "$@" > "$W/$name.out" 2> "$W/$name.err" &
  local tpid=$!
  local rb=0 wb=0
  sleep 0.05
  local pid; pid=$(pgrep -P $tpid || true)
  while kill -0 $tpid 2>/dev/null; do
    if [ -n "$pid" ] && [ -r /proc/$pid/io ]; then
      rb=$(awk '/^read_bytes/{print $2}' /proc/$pid/io 2>/dev/null || echo $rb)
      wb=$(awk '/^write_bytes/{print $2}' /proc/$pid/io 2>/dev/null || echo $wb)
    fi
    sleep 0.1
  done
  wait $tpid
  read -r wall peak user sys < "$tf"
  rm -f "$tf"
  echo "$name $wall $peak $rb $wb $user $sys"
}

if [ ! -f "$SRC/metis.db" ]; then
  "$METIS" db synth --datadir "$SRC" --accounts "$N" --blocks 0 --changes 0 > /dev/null
fi

to_mb() { case $2 in GB/s) echo "$1*1000" | bc;; MB/s) echo "$1";; kB/s) echo "$1/1000" | bc -l;; esac; }
# The disk's sequential bandwidth: the median of three dd runs of each kind
# (a single run on a virtual disk can be off by a factor of three).
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
WS=(); RS=()
for _ in 1 2 3; do
  drop
  WS+=("$(to_mb $(dd if=/dev/zero of="$W/dd.tmp" bs=4M count=512 conv=fdatasync 2>&1 | awk '/copied/{print $(NF-1), $NF}'))")
  drop
  RS+=("$(to_mb $(dd if="$W/dd.tmp" of=/dev/null bs=4M iflag=direct 2>&1 | awk '/copied/{print $(NF-1), $NF}'))")
  rm -f "$W/dd.tmp"
done
WBW=$(median3 "${WS[@]}"); RBW=$(median3 "${RS[@]}")

rm -f "$SNAP"; drop
LOAD_E=$(cut -d' ' -f1-3 /proc/loadavg)
read -r _ ew ep erb ewb eu es < <(run export "$METIS" snapshot export --datadir "$SRC" --out "$SNAP")
rm -rf "$DST" "$W/.dst-$N.import"; drop
LOAD_I=$(cut -d' ' -f1-3 /proc/loadavg)
read -r _ iw ip irb iwb iu is < <(run import "$METIS" snapshot import --datadir "$DST" "$SNAP")

DB=$(stat -c %s "$SRC/metis.db"); SN=$(stat -c %s "$SNAP"); DB2=$(stat -c %s "$DST/metis.db")
mb() { echo "scale=1; $1/1000000" | bc; }
rate() { echo "scale=1; $1/1000000/$2" | bc; }
pct() { echo "scale=0; 100*$1/$2" | bc; }
echo "accounts $N"
echo "source_db_bytes $DB snapshot_bytes $SN imported_db_bytes $DB2"
echo "disk_seq_write_MBps $WBW disk_seq_read_MBps $RBW (dd, 2 GiB, same filesystem, median of write ${WS[*]}, read ${RS[*]})"
E_OUT=$(rate $SN $ew); E_IN=$(rate $erb $ew)
echo "load_average_before export $LOAD_E import $LOAD_I after $(cut -d' ' -f1-3 /proc/loadavg)"
echo "export wall_s $ew user_s $eu sys_s $es peak_rss_MiB $((ep/1024)) disk_read_MB $(mb $erb) disk_write_MB $(mb $ewb)"
echo "export snapshot_write_MBps $E_OUT ($(pct $E_OUT $WBW)% of seq write) db_read_MBps $E_IN ($(pct $E_IN $RBW)% of seq read)"
I_OUT=$(rate $DB2 $iw); I_DISK=$(rate $iwb $iw)
echo "import wall_s $iw user_s $iu sys_s $is peak_rss_MiB $((ip/1024)) disk_read_MB $(mb $irb) disk_write_MB $(mb $iwb)"
echo "import db_write_MBps $I_OUT ($(pct $I_OUT $WBW)% of seq write) all_writes_MBps $I_DISK ($(pct $I_DISK $WBW)% of seq write) snapshot_read_MBps $(rate $SN $iw)"
grep -h state_root "$W/export.out" "$W/import.out"
