//! Deterministic data: every engine gets the same keys and values.
//!
//! Keys are 32 pseudo-random bytes derived from a key index; values are
//! pseudo-random bytes of length 40..=110 derived from (key index,
//! generation). Generation 0 is the initial load; commit number `c` (counted
//! over the life of a data dir, commits phase then churn) writes generation
//! `c`. So the whole content of a data dir follows from (seed, keys loaded,
//! commits done), and the harness can resume on an existing dir.

/// Smallest value length.
pub const MIN_VALUE: usize = 40;
/// Largest value length.
pub const MAX_VALUE: usize = 110;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64 finalizer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(mix64(seed ^ 0x5DEE_CE66_D1CE_4E5B))
    }
    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix64(self.0)
    }
    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The data of one benchmark (a seed).
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Seed of all data.
    pub seed: u64,
}

impl Workload {
    /// Key of index `i`.
    #[inline]
    pub fn key(&self, i: u64) -> [u8; 32] {
        let base = mix64(self.seed ^ i.wrapping_mul(GAMMA));
        let mut k = [0u8; 32];
        for j in 0..4u64 {
            let w = mix64(base.wrapping_add((j + 1).wrapping_mul(GAMMA)));
            k[j as usize * 8..j as usize * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        k
    }

    fn value_seed(&self, i: u64, gen: u64) -> u64 {
        mix64(self.seed.rotate_left(17) ^ mix64(i ^ gen.wrapping_mul(0xA24B_AED4_963E_E407)))
    }

    /// Length of the value of key `i` at generation `gen`.
    #[inline]
    pub fn value_len(&self, i: u64, gen: u64) -> usize {
        MIN_VALUE + (self.value_seed(i, gen) % (MAX_VALUE - MIN_VALUE + 1) as u64) as usize
    }

    /// Appends the value of key `i` at generation `gen` to `out`.
    pub fn value_into(&self, i: u64, gen: u64, out: &mut Vec<u8>) {
        let s = self.value_seed(i, gen);
        let len = MIN_VALUE + (s % (MAX_VALUE - MIN_VALUE + 1) as u64) as usize;
        let mut r = Rng::new(s);
        let start = out.len();
        out.reserve(len + 8);
        while out.len() - start < len {
            out.extend_from_slice(&r.next_u64().to_le_bytes());
        }
        out.truncate(start + len);
    }

    /// Key indices and generation written by commit number `c` (1-based)
    /// when `live` keys exist before it: `updates` random existing keys,
    /// then `inserts` new keys `live..live + inserts`.
    pub fn commit_plan(&self, c: u64, live: u64, updates: u64, inserts: u64) -> Vec<u64> {
        let mut r = Rng::new(self.seed ^ mix64(c.wrapping_mul(0xD6E8_FEB8_6659_FD93)));
        let mut v = Vec::with_capacity((updates + inserts) as usize);
        for _ in 0..updates {
            v.push(r.below(live));
        }
        v.extend(live..live + inserts);
        v
    }

    /// The batch writing `indices` at generation `gen`.
    pub fn batch(&self, indices: impl IntoIterator<Item = u64>, gen: u64) -> Batch {
        let mut b = Batch::default();
        for i in indices {
            b.keys.push(self.key(i));
            self.value_into(i, gen, &mut b.vals);
            b.ends.push(b.vals.len() as u32);
        }
        b
    }

    /// `n` keys of random existing indices below `live`, from stream `stream`.
    pub fn read_keys(&self, stream: u64, live: u64, n: usize) -> Vec<[u8; 32]> {
        let mut r = Rng::new(self.seed ^ 0x7265_6164 ^ mix64(stream + 1));
        (0..n).map(|_| self.key(r.below(live))).collect()
    }
}

/// One transaction's puts: keys and values in a flat buffer.
#[derive(Default, Debug, Clone)]
pub struct Batch {
    /// Keys, in write order.
    pub keys: Vec<[u8; 32]>,
    /// Values, concatenated.
    pub vals: Vec<u8>,
    /// End offset of each value in `vals`.
    pub ends: Vec<u32>,
}

impl Batch {
    /// Number of puts.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// Whether there is no put.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// Bytes of keys and values.
    pub fn bytes(&self) -> usize {
        self.keys.len() * 32 + self.vals.len()
    }
    /// (key, value) pairs in write order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut start = 0usize;
        self.keys.iter().zip(self.ends.iter()).map(move |(k, &e)| {
            let v = &self.vals[start..e as usize];
            start = e as usize;
            (&k[..], v)
        })
    }
}

/// Current value length of every live key of a data dir, replayed from its
/// history (load of `loaded` keys, then `commits` commits).
pub fn replay_lens(w: &Workload, loaded: u64, commits: u64, updates: u64, inserts: u64) -> Vec<u8> {
    let mut lens: Vec<u8> = (0..loaded).map(|i| w.value_len(i, 0) as u8).collect();
    let mut live = loaded;
    for c in 1..=commits {
        let plan = w.commit_plan(c, live, updates, inserts);
        lens.resize((live + inserts) as usize, 0);
        for i in plan {
            lens[i as usize] = w.value_len(i, c) as u8;
        }
        live += inserts;
    }
    lens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let w = Workload { seed: 7 };
        assert_eq!(w.key(5), w.key(5));
        assert_ne!(w.key(5), w.key(6));
        let mut v = Vec::new();
        for i in 0..1000 {
            v.clear();
            w.value_into(i, 3, &mut v);
            assert_eq!(v.len(), w.value_len(i, 3));
            assert!((MIN_VALUE..=MAX_VALUE).contains(&v.len()));
        }
        let b = w.batch(0..10, 0);
        assert_eq!(b.iter().count(), 10);
        let plan = w.commit_plan(1, 100, 9, 1);
        assert_eq!(plan.len(), 10);
        assert_eq!(plan[9], 100);
        assert!(plan[..9].iter().all(|&i| i < 100));
    }
}
