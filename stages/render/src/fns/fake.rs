//! The `fake_*` generators (and `uuid_v4`): deterministic test data from a seeded
//! generator, with the word lists they draw from. Not the choice of seed (see
//! `random.rs`) nor their registration (see `mod.rs`).

use std::collections::HashMap;

use serde_json::{Number, Value};
use tera::Result as TeraResult;

use super::args::{arg_count, arg_f64, arg_i64};
use super::clock::format_rfc3339;
use super::random::Rng;

// The word lists stay compact, several words a row: they are data, not code.
/// First names.
#[rustfmt::skip]
const FIRST: &[&str] = &[
    "Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Dennis", "Margaret", "Edsger",
    "Frances", "John", "Radia", "Donald", "Hedy", "Tim", "Katherine",
];
/// Last names.
#[rustfmt::skip]
const LAST: &[&str] = &[
    "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Ritchie", "Hamilton",
    "Dijkstra", "Allen", "McCarthy", "Perlman", "Knuth", "Lamarr", "Berners-Lee", "Johnson",
];
/// Company names, and the domain names made from them.
#[rustfmt::skip]
const COMPANY: &[&str] = &[
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Cyberdyne",
    "Soylent", "Tyrell",
];
/// Company name suffixes.
#[rustfmt::skip]
const COMPANY_SUFFIX: &[&str] = &[
    "Corp", "Inc", "Labs", "Systems", "Industries", "Group", "LLC",
];
/// Top-level domains.
#[rustfmt::skip]
const TLD: &[&str] = &[
    "com", "org", "net", "io", "dev", "test",
];
/// Cities.
#[rustfmt::skip]
const CITY: &[&str] = &[
    "Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Franklin", "Clinton",
    "Salem", "Oakland", "Ashland",
];
/// Street names.
#[rustfmt::skip]
const STREET: &[&str] = &[
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Lake", "Hill", "Park", "Washington",
];
/// Street kinds.
#[rustfmt::skip]
const STREET_KIND: &[&str] = &[
    "St", "Ave", "Rd", "Blvd", "Ln", "Way",
];
/// Countries.
#[rustfmt::skip]
const COUNTRY: &[&str] = &[
    "Germany", "France", "Japan", "Brazil", "Canada", "Kenya", "India", "Norway", "Chile",
    "Australia",
];
/// Lorem ipsum, for words, sentences and paragraphs.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed",
    "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna",
    "aliqua", "enim", "minim", "veniam", "quis", "nostrud",
];
/// Characters of `fake_string`.
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A version 4 UUID drawn from `rng`.
fn uuid_from(rng: &mut Rng) -> String {
    let high = rng.next_u64();
    let low = rng.next_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `count` words of lorem ipsum.
fn words(rng: &mut Rng, count: usize) -> Vec<&'static str> {
    (0..count).map(|_| rng.pick(WORDS)).collect()
}

/// A fake generator: given its rng and arguments, a value.
type Generator = fn(&mut Rng, &HashMap<String, Value>) -> TeraResult<Value>;

/// `count` words, capitalised, with a full stop.
fn sentence(rng: &mut Rng, count: usize) -> String {
    let mut sentence = words(rng, count).join(" ");
    if let Some(first) = sentence.get(..1) {
        sentence = first.to_uppercase() + &sentence[1..];
    }
    sentence + "."
}

/// A string value.
fn text(value: impl Into<String>) -> TeraResult<Value> {
    Ok(Value::String(value.into()))
}

pub(super) const GENERATORS: &[(&str, Generator)] = &[
    ("fake_int_range", |rng, args| {
        let lo = arg_i64(args, "min", 0)?;
        let hi = arg_i64(args, "max", 100)?;
        Ok(Value::from(rng.range(lo.min(hi), hi.max(lo))))
    }),
    ("fake_int", |rng, args| {
        let lo = arg_i64(args, "min", 0)?;
        let hi = arg_i64(args, "max", 1000)?;
        Ok(Value::from(rng.range(lo.min(hi), hi.max(lo))))
    }),
    ("fake_float", |rng, args| {
        let lo = arg_f64(args, "min", 0.0)?;
        let hi = arg_f64(args, "max", 1.0)?;
        let drawn = lo + rng.unit() * (hi - lo);
        let rounded = (drawn * 1e6).round() / 1e6;
        Ok(Number::from_f64(rounded).map_or(Value::Null, Value::Number))
    }),
    ("fake_bool", |rng, args| {
        let ratio = arg_i64(args, "ratio", 50)?.clamp(0, 100);
        Ok(Value::Bool(rng.range(0, 99) < ratio))
    }),
    ("fake_string", |rng, args| {
        let n = arg_count(args, "len", 8, 4096)?;
        text(
            (0..n)
                .map(|_| ALNUM[rng.range(0, ALNUM.len() as i64 - 1) as usize] as char)
                .collect::<String>(),
        )
    }),
    ("fake_hex", |rng, args| {
        let n = arg_count(args, "len", 16, 4096)?;
        text(
            (0..n)
                .map(|_| char::from_digit(rng.range(0, 15) as u32, 16).unwrap_or('0'))
                .collect::<String>(),
        )
    }),
    ("fake_uuid", |rng, _| text(uuid_from(rng))),
    ("fake_uuid_seeded", |rng, _| text(uuid_from(rng))),
    ("uuid_v4", |rng, _| text(uuid_from(rng))),
    ("fake_name", |rng, _| {
        text(format!("{} {}", rng.pick(FIRST), rng.pick(LAST)))
    }),
    ("fake_first_name", |rng, _| text(rng.pick(FIRST))),
    ("fake_last_name", |rng, _| text(rng.pick(LAST))),
    ("fake_username", |rng, _| {
        text(format!(
            "{}{}",
            rng.pick(FIRST).to_lowercase(),
            rng.range(1, 999)
        ))
    }),
    ("fake_email", |rng, _| {
        text(format!(
            "{}.{}@{}.{}",
            rng.pick(FIRST).to_lowercase(),
            rng.pick(LAST).to_lowercase(),
            rng.pick(COMPANY).to_lowercase(),
            rng.pick(TLD)
        ))
    }),
    ("fake_company", |rng, _| {
        text(format!(
            "{} {}",
            rng.pick(COMPANY),
            rng.pick(COMPANY_SUFFIX)
        ))
    }),
    ("fake_ipv4", |rng, _| {
        text(format!(
            "{}.{}.{}.{}",
            rng.range(1, 223),
            rng.range(0, 255),
            rng.range(0, 255),
            rng.range(1, 254)
        ))
    }),
    ("fake_ipv6", |rng, _| {
        let groups: Vec<String> = (0..8)
            .map(|_| format!("{:x}", rng.range(0, 0xffff)))
            .collect();
        text(groups.join(":"))
    }),
    ("fake_mac_address", |rng, _| {
        let parts: Vec<String> = (0..6)
            .map(|_| format!("{:02x}", rng.range(0, 255)))
            .collect();
        text(parts.join(":"))
    }),
    ("fake_port", |rng, args| {
        let lo = arg_i64(args, "min", 1024)?;
        let hi = arg_i64(args, "max", 65535)?;
        Ok(Value::from(
            rng.range(lo.clamp(1, 65535), hi.clamp(1, 65535)),
        ))
    }),
    ("fake_domain", |rng, _| {
        text(format!(
            "{}.{}",
            rng.pick(COMPANY).to_lowercase(),
            rng.pick(TLD)
        ))
    }),
    ("fake_url", |rng, _| {
        text(format!(
            "https://{}.{}/{}",
            rng.pick(COMPANY).to_lowercase(),
            rng.pick(TLD),
            rng.pick(WORDS)
        ))
    }),
    ("fake_timestamp", |rng, _| {
        // 2000-01-01 .. 2030-12-31
        let ms = rng.range(946_684_800, 1_924_905_600) * 1000;
        text(format_rfc3339(ms)?)
    }),
    ("fake_date", |rng, _| {
        let ms = rng.range(946_684_800, 1_924_905_600) * 1000;
        text(format_rfc3339(ms)?[..10].to_string())
    }),
    ("fake_time", |rng, _| {
        text(format!(
            "{:02}:{:02}:{:02}",
            rng.range(0, 23),
            rng.range(0, 59),
            rng.range(0, 59)
        ))
    }),
    ("fake_phone", |rng, _| {
        text(format!(
            "+1-555-{:03}-{:04}",
            rng.range(100, 999),
            rng.range(0, 9999)
        ))
    }),
    ("fake_city", |rng, _| text(rng.pick(CITY))),
    ("fake_street", |rng, _| {
        text(format!(
            "{} {} {}",
            rng.range(1, 9999),
            rng.pick(STREET),
            rng.pick(STREET_KIND)
        ))
    }),
    ("fake_zip", |rng, _| {
        text(format!("{:05}", rng.range(501, 99950)))
    }),
    ("fake_country", |rng, _| text(rng.pick(COUNTRY))),
    ("fake_word", |rng, _| text(rng.pick(WORDS))),
    ("fake_words", |rng, args| {
        let count = arg_count(args, "count", 3, 10_000)?;
        text(words(rng, count).join(" "))
    }),
    ("fake_sentence", |rng, args| {
        let lo = arg_count(args, "min", 4, 10_000)?;
        let hi = arg_count(args, "max", 10, 10_000)?.max(lo);
        let count = rng.range(lo as i64, hi as i64) as usize;
        text(sentence(rng, count.max(1)))
    }),
    ("fake_paragraph", |rng, args| {
        let count = arg_count(args, "sentences", 3, 1000)?;
        let sentences: Vec<String> = (0..count.max(1))
            .map(|_| {
                let word_count = rng.range(4, 10) as usize;
                sentence(rng, word_count)
            })
            .collect();
        text(sentences.join(" "))
    }),
];
