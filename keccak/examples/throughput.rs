//! ns per hash of `keccak256_each` against alloy's scalar `keccak256`, for
//! input sizes the node hashes: a slot or address (32 B), an account leaf
//! (~110 B), a receipt without logs (~280 B), a full branch node (532 B);
//! then mixed lengths: the branch children of a trie (leaves and branches)
//! and the receipts of a block where one transaction logged 2 MB; then
//! small batches of account leaves (a branch's children: two to sixteen).
//!
//! `cargo run --release -p metis-keccak --example throughput`

use std::time::Instant;

/// The best of five runs of `f`, in seconds.
fn best_of_five(f: &mut dyn FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// Best times of hashing `inputs` one by one with alloy and with
/// `keccak256_each` over `batch` inputs at a time, in seconds.
fn scalar_and_batched(inputs: &[Vec<u8>], batch: usize) -> (f64, f64) {
    let mut out = Vec::new();
    let scalar = best_of_five(&mut || {
        std::hint::black_box(inputs.iter().map(alloy_primitives::keccak256).collect::<Vec<_>>());
    });
    let batched = best_of_five(&mut || {
        for chunk in inputs.chunks(batch) {
            metis_keccak::keccak256_each(chunk, &mut out);
            std::hint::black_box(&out);
        }
    });
    (scalar, batched)
}

fn main() {
    println!("batched: {}", metis_keccak::batched());
    for size in [32usize, 110, 280, 532] {
        let inputs: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; size]).collect();
        let (scalar, each) = scalar_and_batched(&inputs, inputs.len());
        let ns = |s: f64| s * 1e9 / inputs.len() as f64;
        println!(
            "{size:>4} B: scalar {:>6.0} ns, batched {:>6.0} ns per hash, {:.2}x",
            ns(scalar),
            ns(each),
            scalar / each
        );
    }
    let children: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; if i % 3 == 0 { 532 } else { 110 }]).collect();
    let mut receipts: Vec<Vec<u8>> = (0..80).map(|i| vec![i as u8; 280 + 300 * (i % 4)]).collect();
    receipts[40] = vec![7; 2 << 20];
    for (name, inputs) in [("trie children (1 in 3 a branch)", children), ("80 receipts, one of 2 MB", receipts)] {
        let (scalar, each) = scalar_and_batched(&inputs, inputs.len());
        println!("{name}: scalar {:.0} us, batched {:.0} us, {:.2}x", scalar * 1e6, each * 1e6, scalar / each);
    }
    // Batches of a branch's size, each hashed on its own as the trie builder does.
    for batch in [2usize, 3, 4, 9, 10, 12, 16] {
        let inputs: Vec<Vec<u8>> = (0..batch * 512).map(|i| vec![i as u8; 110]).collect();
        let (scalar, each) = scalar_and_batched(&inputs, batch);
        let ns = |s: f64| s * 1e9 / inputs.len() as f64;
        println!(
            "batches of {batch:>2}: scalar {:>4.0} ns, batched {:>4.0} ns per hash, {:.2}x",
            ns(scalar),
            ns(each),
            scalar / each
        );
    }
}
