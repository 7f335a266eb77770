//! The end-to-end test through web3.py (tests/e2e/test_web3.py): a real
//! client library deploys a contract, sends transactions, reads events,
//! verifies eth_getProof against the stateRoot, and reads everything again
//! after the node restarts. Without Python or web3.py (`pip install
//! web3==7.16.0`) it is skipped with a notice, unless `METIS_REQUIRE_E2E=1`
//! (set by `.ci/run`, which installs them), where that is a failure.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn python_with_web3() -> Option<String> {
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok =
        Command::new(&py).args(["-c", "import web3, eth_account, rlp, websockets"]).output().ok()?.status.success();
    ok.then_some(py)
}

fn run_phase(py: &str, phase: &str, rpc: std::net::SocketAddr, state: &std::path::Path) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/test_web3.py");
    let out = Command::new(py)
        .arg(&script)
        .args([phase, &format!("http://{rpc}"), &format!("ws://{rpc}"), state.to_str().unwrap()])
        .output()
        .expect("run python");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "web3.py phase {phase} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web3py_end_to_end_with_restart() {
    let Some(py) = python_with_web3() else {
        assert!(
            std::env::var("METIS_REQUIRE_E2E").as_deref() != Ok("1"),
            "METIS_REQUIRE_E2E=1 but python3 with web3.py was not found (PYTHON={:?})",
            std::env::var("PYTHON").ok()
        );
        println!("SKIPPED web3py_end_to_end_with_restart: python3 with web3.py not found (pip install web3==7.16.0)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("e2e-state.json");
    let data = dir.path().join("data");
    let node = common::start_node(&data, Duration::from_millis(100), |_| {}).await;
    let (py2, state2, rpc) = (py.clone(), state.clone(), node.rpc_addr);
    tokio::task::spawn_blocking(move || run_phase(&py2, "run", rpc, &state2)).await.unwrap();
    node.stop().await;

    let node = common::start_node(&data, Duration::from_millis(100), |_| {}).await;
    let rpc = node.rpc_addr;
    tokio::task::spawn_blocking(move || run_phase(&py, "after-restart", rpc, &state)).await.unwrap();
    node.stop().await;
}
