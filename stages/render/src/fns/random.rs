//! Randomness for the template functions: a small seeded generator and the rule
//! that picks each call's seed (its own `seed=`, the render's seed, or entropy,
//! which marks the render volatile). Not the generators of fake data (see `fake.rs`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use serde_json::Value;
use tera::Result as TeraResult;

use super::session::with_session;

/// splitmix64: tiny, fast, and good enough for test data.
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi]` (inclusive); `lo` when the range is empty.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi as i128 - lo as i128 + 1) as u128;
        (lo as i128 + (self.next_u64() as u128 % span) as i128) as i64
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.range(0, list.len() as i64 - 1) as usize]
    }
}

/// FNV-1a of `text`: mixes a function name or a textual seed into a seed.
fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The generator for one call of function `name`: its own `seed=` argument, else the
/// render's seed (a fresh stream per call, in call order), else entropy (volatile).
pub(super) fn rng_for(name: &str, args: &HashMap<String, Value>) -> TeraResult<Rng> {
    if let Some(seed_arg) = args.get("seed") {
        let seed = match seed_arg {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_i64().map(|signed| signed as u64))
                .unwrap_or_else(|| n.as_f64().unwrap_or(0.0).to_bits()),
            Value::String(text) => text.trim().parse::<u64>().unwrap_or_else(|_| fnv1a(text)),
            Value::Bool(flag) => *flag as u64,
            other => fnv1a(&other.to_string()),
        };
        return Ok(Rng::new(seed ^ fnv1a(name)));
    }
    with_session(|session| match session.seed {
        Some(seed) => {
            session.draws += 1;
            let mut mix = Rng::new(seed ^ session.draws.wrapping_mul(0xA076_1D64_78BD_642F));
            Rng::new(mix.next_u64() ^ fnv1a(name))
        }
        None => {
            session.volatile = true;
            let mut entropy = std::collections::hash_map::RandomState::new().build_hasher();
            entropy.write_u64(session.draws);
            session.draws += 1;
            if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                entropy.write_u128(since.as_nanos());
            }
            Rng::new(entropy.finish())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn rng_ranges_are_inclusive_and_bounded() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let drawn = rng.range(-3, 3);
            assert!((-3..=3).contains(&drawn));
        }
        assert_eq!(rng.range(5, 5), 5);
        let wide = rng.range(i64::MIN, i64::MAX);
        assert_ne!(wide, rng.range(i64::MIN, i64::MAX));
    }
}
