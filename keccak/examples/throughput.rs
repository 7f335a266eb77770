//! ns per hash of `keccak256_each` against alloy's scalar `keccak256`, for
//! input sizes the node hashes: a slot or address (32 B), an account leaf
//! (~110 B), a receipt without logs (~280 B), a full branch node (532 B).
//!
//! `cargo run --release -p metis-keccak --example throughput`

use std::time::Instant;

fn main() {
    println!("batched: {}", metis_keccak::batched());
    for size in [32usize, 110, 280, 532] {
        let inputs: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; size]).collect();
        let mut out = Vec::new();
        let best = |f: &mut dyn FnMut()| {
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e9 / inputs.len() as f64
                })
                .fold(f64::MAX, f64::min)
        };
        let scalar = best(&mut || {
            std::hint::black_box(inputs.iter().map(alloy_primitives::keccak256).collect::<Vec<_>>());
        });
        let each = best(&mut || metis_keccak::keccak256_each(&inputs, &mut out));
        println!("{size:>4} B: scalar {scalar:>6.0} ns, batched {each:>6.0} ns per hash, {:.2}x", scalar / each);
    }
}
