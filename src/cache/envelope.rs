//! The envelope every stored value travels in: a magic, a format version, the
//! time it was written and a blake3 checksum of the rest, so that a flipped
//! bit, a truncated value or a value from another format is a miss, never a
//! wrong result.

use std::fmt;

const MAGIC: &[u8; 4] = b"CLNM";
/// Bump when the envelope layout changes; older envelopes then read as corrupt.
pub(crate) const ENVELOPE_VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 8 + 32;

/// Why an envelope was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvelopeError {
    TooShort,
    BadMagic,
    BadVersion(u8),
    BadChecksum,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::TooShort => f.write_str("value shorter than its header"),
            EnvelopeError::BadMagic => f.write_str("value has no clnrm envelope"),
            EnvelopeError::BadVersion(v) => write!(f, "unknown envelope version {v}"),
            EnvelopeError::BadChecksum => f.write_str("checksum mismatch"),
        }
    }
}

fn checksum(written_at: &[u8], payload: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(written_at);
    hasher.update(payload);
    hasher.finalize()
}

/// Wraps `payload` written at `written_at` (unix seconds).
pub(crate) fn seal(payload: &[u8], written_at: u64) -> Vec<u8> {
    let stamp = written_at.to_le_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&stamp);
    out.extend_from_slice(checksum(&stamp, payload).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// A verified envelope's contents.
pub(crate) struct Opened<'a> {
    pub(crate) payload: &'a [u8],
}

/// Checks and unwraps an envelope.
pub(crate) fn open(bytes: &[u8]) -> Result<Opened<'_>, EnvelopeError> {
    if bytes.len() < HEADER_LEN {
        return Err(EnvelopeError::TooShort);
    }
    if &bytes[..4] != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    if bytes[4] != ENVELOPE_VERSION {
        return Err(EnvelopeError::BadVersion(bytes[4]));
    }
    let stamp = &bytes[5..13];
    let sum = &bytes[13..45];
    let payload = &bytes[HEADER_LEN..];
    if checksum(stamp, payload).as_bytes() != sum {
        return Err(EnvelopeError::BadChecksum);
    }
    Ok(Opened { payload })
}

/// The write time of an envelope whose header is intact, without checking the
/// payload (gc only needs the time).
pub(crate) fn written_at(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return None;
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&bytes[5..13]);
    Some(u64::from_le_bytes(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sealed = seal(b"hello", 42);
        let opened = open(&sealed).unwrap();
        assert_eq!(opened.payload, b"hello");
        assert_eq!(written_at(&sealed), Some(42));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let sealed = seal(b"some payload bytes", 7);
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    open(&bad).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let sealed = seal(b"payload", 1);
        for len in 0..sealed.len() {
            assert!(open(&sealed[..len]).is_err());
        }
    }
}
