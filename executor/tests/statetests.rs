//! ethereum/tests GeneralStateTests: state roots and logs hashes are an
//! oracle independent of this executor.

mod common_data;

use metis_executor::statetest::{run_paths, Summary};
use std::time::Instant;

fn run(path: std::path::PathBuf) -> Summary {
    let start = Instant::now();
    let mut failures = Vec::new();
    let summary = run_paths(std::slice::from_ref(&path), None, |f| failures.push(f.to_string()));
    for f in failures.iter().take(50) {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "state tests under {}: {} passed, {} failed, {} skipped in {:.1}s",
        path.display(),
        summary.passed,
        summary.failed,
        summary.skipped,
        start.elapsed().as_secs_f64()
    );
    summary
}

#[test]
fn vendored_state_tests_pass() {
    let summary = run(common_data::fixtures().join("state_tests"));
    assert!(summary.passed > 100, "too few cases ran: {summary:?}");
    assert_eq!(summary.failed, 0);
}

#[test]
fn full_state_tests_pass() {
    let Some(data) = common_data::shared_data() else {
        eprintln!("notice: shared data not found, full state tests skipped");
        return;
    };
    let summary = run(data.join("ethereum-tests/GeneralStateTests"));
    assert!(summary.passed > 10_000, "too few cases ran: {summary:?}");
    assert_eq!(summary.failed, 0);
}
