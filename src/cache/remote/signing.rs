//! How a value travels to and from the remote cache: the local store's checksummed
//! envelope inside a small frame that may carry a keyed blake3 MAC (as Turborepo
//! signs its artifacts). The MAC covers the cache key and the envelope, so a writer
//! without the key can neither forge a value nor move a real one to another key.
//!
//! ```text
//! frame = "CLRC" | version (1) | signed (0 or 1) | MAC (32, only when signed) | envelope
//! ```
//!
//! Not the transport (`http.rs`) and not the envelope itself (`../envelope.rs`).

use std::fmt;

use super::super::envelope::{self, EnvelopeError};
use super::super::Key;

const MAGIC: &[u8; 4] = b"CLRC";
const FRAME_VERSION: u8 = 1;
const UNSIGNED: u8 = 0;
const SIGNED: u8 = 1;
/// Domain separation for deriving the MAC key from the user's secret.
const KEY_CONTEXT: &str = "clnrm remote cache 2026-12 value signing key";

/// The key uploads are signed with, derived from `CLNRM_REMOTE_CACHE_KEY`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SigningKey([u8; 32]);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    pub(crate) fn from_secret(secret: &str) -> SigningKey {
        SigningKey(blake3::derive_key(KEY_CONTEXT, secret.as_bytes()))
    }

    fn mac(&self, key: &Key, envelope: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(key.as_bytes());
        hasher.update(&(envelope.len() as u64).to_le_bytes());
        hasher.update(envelope);
        hasher.finalize()
    }
}

/// Why a value read from the remote was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Not a clnrm frame at all (another tool's value, an error page, garbage).
    NotAFrame,
    /// No MAC, and this client has a key: anyone who can write could have put it there.
    Unsigned,
    /// A MAC that does not match: signed with another key, or altered.
    BadSignature,
    /// The envelope inside fails its checksum.
    Corrupt(EnvelopeError),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::NotAFrame => f.write_str("is not a clnrm cache value"),
            Rejected::Unsigned => f.write_str("is not signed, and CLNRM_REMOTE_CACHE_KEY is set"),
            Rejected::BadSignature => {
                f.write_str("has a signature that does not match CLNRM_REMOTE_CACHE_KEY")
            }
            Rejected::Corrupt(e) => write!(f, "is damaged ({e})"),
        }
    }
}

/// The bytes to upload for `envelope` stored under `key`.
pub(crate) fn frame(key: &Key, envelope: &[u8], signing: Option<&SigningKey>) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + 32 + envelope.len());
    out.extend_from_slice(MAGIC);
    out.push(FRAME_VERSION);
    match signing {
        Some(signing) => {
            out.push(SIGNED);
            out.extend_from_slice(signing.mac(key, envelope).as_bytes());
        }
        None => out.push(UNSIGNED),
    }
    out.extend_from_slice(envelope);
    out
}

/// The verified envelope inside `bytes` read for `key`. With a signing key the
/// MAC must be there and match; without one the remote is trusted as it is.
pub(crate) fn unframe<'a>(
    key: &Key,
    bytes: &'a [u8],
    signing: Option<&SigningKey>,
) -> Result<&'a [u8], Rejected> {
    if bytes.len() < 6 || &bytes[..4] != MAGIC || bytes[4] != FRAME_VERSION {
        return Err(Rejected::NotAFrame);
    }
    let envelope = match bytes[5] {
        SIGNED => {
            let mac = bytes.get(6..38).ok_or(Rejected::NotAFrame)?;
            let envelope = &bytes[38..];
            if let Some(signing) = signing {
                let mac: [u8; 32] = mac.try_into().map_err(|_| Rejected::NotAFrame)?;
                // blake3::Hash compares in constant time.
                if blake3::Hash::from(mac) != signing.mac(key, envelope) {
                    return Err(Rejected::BadSignature);
                }
            }
            envelope
        }
        UNSIGNED if signing.is_some() => return Err(Rejected::Unsigned),
        UNSIGNED => &bytes[6..],
        _ => return Err(Rejected::NotAFrame),
    };
    envelope::open(envelope).map_err(Rejected::Corrupt)?;
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[test]
    fn a_signed_value_reads_back_only_with_the_same_key_and_under_the_same_name() {
        let ours = SigningKey::from_secret("team secret");
        let theirs = SigningKey::from_secret("other secret");
        let sealed = envelope::seal(b"pass", 1);
        let framed = frame(&key(1), &sealed, Some(&ours));
        assert_eq!(
            unframe(&key(1), &framed, Some(&ours)),
            Ok(sealed.as_slice())
        );
        assert_eq!(
            unframe(&key(1), &framed, Some(&theirs)),
            Err(Rejected::BadSignature)
        );
        assert_eq!(
            unframe(&key(2), &framed, Some(&ours)),
            Err(Rejected::BadSignature),
            "a signed value moved to another key is refused"
        );
        // Without a key the remote is trusted as is.
        assert_eq!(unframe(&key(1), &framed, None), Ok(sealed.as_slice()));
    }

    #[test]
    fn an_unsigned_value_is_refused_by_a_client_with_a_key() {
        let sealed = envelope::seal(b"pass", 1);
        let framed = frame(&key(1), &sealed, None);
        let ours = SigningKey::from_secret("k");
        assert_eq!(
            unframe(&key(1), &framed, Some(&ours)),
            Err(Rejected::Unsigned)
        );
        assert_eq!(unframe(&key(1), &framed, None), Ok(sealed.as_slice()));
    }

    #[test]
    fn any_flipped_bit_of_a_signed_value_is_refused() {
        let signing = SigningKey::from_secret("k");
        let framed = frame(
            &key(3),
            &envelope::seal(b"a passing result", 9),
            Some(&signing),
        );
        for i in 0..framed.len() {
            let mut bad = framed.clone();
            bad[i] ^= 0x10;
            assert!(unframe(&key(3), &bad, Some(&signing)).is_err(), "byte {i}");
        }
    }

    #[test]
    fn garbage_is_not_a_frame() {
        for bytes in [&b""[..], b"<html>500</html>", b"CLRC", b"CLRC\x01\x07rest"] {
            assert!(unframe(&key(0), bytes, None).is_err());
        }
    }
}
