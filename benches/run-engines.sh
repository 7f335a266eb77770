#!/usr/bin/env bash
# Builds metis-bench-engines with the peer engines (libmdbx, redb, RocksDB)
# against the system librocksdb and runs it with the given arguments, e.g.
#   benches/run-engines.sh --keys 1M
#   benches/run-engines.sh --keys 10M --phases load,reads,commits,space
# Needs: apt-get install -y librocksdb-dev libclang-dev (and a C compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
export ROCKSDB_LIB_DIR="${ROCKSDB_LIB_DIR:-/usr/lib/x86_64-linux-gnu}"
if [ ! -e "$ROCKSDB_LIB_DIR/librocksdb.so" ]; then
    echo "no librocksdb.so in $ROCKSDB_LIB_DIR: apt-get install -y librocksdb-dev libclang-dev" >&2
    exit 1
fi
cargo build --release -p metis-benches --features peers
exec "${CARGO_TARGET_DIR:-target}/release/metis-bench-engines" "$@"
