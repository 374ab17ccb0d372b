//! The byte pattern of large test files: deterministic, never repeating, readable from any offset.
//!
//! One definition of the bytes: byte `i` of the pattern with `seed` is byte `i % 8` of
//! the splitmix64 value of block `i / 8`. Every 8-byte block is distinct (splitmix64 is a
//! bijection of its counter), so a misplaced, repeated or lost chunk of a large response
//! cannot go unnoticed; and any part can be computed on its own, which streaming checks
//! need ([`fill`], [`check`]).

/// The splitmix64 value of `block` under `seed`.
fn block(seed: u64, block: u64) -> u64 {
    let mut z = seed.wrapping_add(block.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Byte `at` of the pattern.
pub fn byte(seed: u64, at: u64) -> u8 {
    block(seed, at / 8).to_le_bytes()[(at % 8) as usize]
}

/// Fills `out` with the pattern's bytes from offset `at`.
pub fn fill(seed: u64, at: u64, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let pos = at + i as u64;
        let word = block(seed, pos / 8).to_le_bytes();
        let skip = (pos % 8) as usize;
        let n = (8 - skip).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[skip..skip + n]);
        i += n;
    }
}

/// The first `len` bytes of the pattern.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    fill(seed, 0, &mut out);
    out
}

/// Asserts `got` are the pattern's bytes from offset `at`; a failure names the first
/// differing byte (a large body is never printed).
#[track_caller]
pub fn check(seed: u64, at: u64, got: &[u8]) {
    let mut want = vec![0; got.len()];
    fill(seed, at, &mut want);
    if let Some(k) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("byte {} is {:#x}, expected {:#x}", at + k as u64, got[k], want[k]);
    }
}

/// Asserts equality of two large byte strings without printing them.
#[track_caller]
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!("{what}: got {} bytes, want {}; first difference at {first:?}", got.len(), want.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_part_is_the_same_bytes_as_the_whole() {
        let whole = pattern(1000, 7);
        for (at, len) in [(0, 1000), (1, 5), (7, 9), (13, 987), (999, 1)] {
            let mut part = vec![0; len];
            fill(7, at as u64, &mut part);
            assert_eq!(part, whole[at..at + len]);
            assert_eq!(byte(7, at as u64), whole[at]);
        }
        check(7, 100, &whole[100..]);
        assert_ne!(pattern(64, 7), pattern(64, 8), "the seed matters");
    }
}
