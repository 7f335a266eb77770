//! Mainnet block fixtures: receipts root, gas used and logs bloom against the
//! header (an oracle independent of this executor); parallel post-state
//! against sequential.

mod common_data;

use metis_executor::replay::{run_block_dir, ReplayMode};
use std::path::Path;

fn check_dir(root: &Path) -> usize {
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .expect("fixture directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("block.json").exists())
        .collect();
    dirs.sort();
    let mut failed = Vec::new();
    for dir in &dirs {
        for workers in [2, 4] {
            let report = run_block_dir(dir, ReplayMode::Both, workers);
            eprintln!(
                "block {} ({} txs, {workers} workers): seq {:.1} ms, par {:.1} ms, ok {}",
                report.number,
                report.txs,
                report.seq_ms.unwrap_or(0.0),
                report.par_ms.unwrap_or(0.0),
                report.ok
            );
            if !report.ok {
                for m in report.mismatches.iter().take(10) {
                    eprintln!("  {m}");
                }
                failed.push(report.number);
            }
        }
    }
    assert!(failed.is_empty(), "blocks failed: {failed:?}");
    dirs.len()
}

#[test]
fn vendored_mainnet_blocks_match_headers() {
    let n = check_dir(&common_data::fixtures().join("mainnet_blocks"));
    assert!(n >= 2);
}

#[test]
fn all_mainnet_blocks_match_headers() {
    let Some(data) = common_data::shared_data() else {
        eprintln!("notice: shared data not found, mainnet blocks skipped");
        return;
    };
    assert_eq!(check_dir(&data.join("mainnet-blocks")), 22);
}
