//! Template functions and filters: `env`, the clock, hashes, `toml_encode`, the
//! deterministic `fake_*` generators, and the internal helpers the preprocessor's
//! rewrites call (`__clnrm_map`, `__clnrm_list`, `__clnrm_none`).
//!
//! Tera wants `'static` functions, but a render must read the environment through
//! the caller's [`World`] and note what it read. The render therefore installs a
//! per-thread [`Session`] for the duration of the Tera call (Tera renders
//! synchronously on the calling thread), and the functions reach it from there.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use tera::{Result as TeraResult, Tera};

use crate::World;

/// Per-render state reachable from the template functions.
pub(crate) struct Session {
    world: *const (dyn World + 'static),
    /// Environment variables read, by name: blake3 of the value, `None` = unset.
    pub env: BTreeMap<String, Option<[u8; 32]>>,
    /// The clock or unseeded randomness was used.
    pub volatile: bool,
    seed: Option<u64>,
    /// Calls of seeded random functions so far (each gets its own stream).
    draws: u64,
    /// Frozen clock, in milliseconds since the epoch.
    clock_ms: Option<i64>,
}

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Installs a session for this thread; removes it (returning what it recorded) when
/// [`SessionGuard::finish`] is called or the guard is dropped (also on unwinding).
pub(crate) struct SessionGuard<'w> {
    _world: std::marker::PhantomData<&'w dyn World>,
}

impl<'w> SessionGuard<'w> {
    pub fn install(world: &'w dyn World, seed: Option<u64>, clock_ms: Option<i64>) -> Self {
        let ptr: *const (dyn World + 'w) = world;
        // SAFETY: only the lifetime bound of the trait object is erased. The pointer is
        // dereferenced only by `with_world` while this guard is alive (the guard borrows
        // the world for 'w), and the guard clears it from the thread-local on drop, so
        // it never outlives the borrow. Tera calls functions on the rendering thread.
        let ptr: *const (dyn World + 'static) = unsafe { std::mem::transmute(ptr) };
        SESSION.with(|s| {
            *s.borrow_mut() = Some(Session {
                world: ptr,
                env: BTreeMap::new(),
                volatile: false,
                seed,
                draws: 0,
                clock_ms,
            })
        });
        SessionGuard {
            _world: std::marker::PhantomData,
        }
    }

    pub fn finish(self) -> (BTreeMap<String, Option<[u8; 32]>>, bool) {
        let s = SESSION.with(|s| s.borrow_mut().take());
        std::mem::forget(self);
        s.map_or((BTreeMap::new(), false), |s| (s.env, s.volatile))
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        SESSION.with(|s| s.borrow_mut().take());
    }
}

fn with_session<T>(f: impl FnOnce(&mut Session) -> T) -> TeraResult<T> {
    SESSION.with(|s| match s.borrow_mut().as_mut() {
        Some(sess) => Ok(f(sess)),
        None => Err(tera::Error::msg(
            "clnrm template functions are only available while rendering",
        )),
    })
}

/// Reads an environment variable through the session's world and records it.
fn read_env(name: &str) -> TeraResult<Option<String>> {
    let world = with_session(|s| s.world)?;
    // SAFETY: see `SessionGuard::install`: the session exists, so the guard (and the
    // borrow of the world) is alive.
    let value = unsafe { &*world }.env_var(name);
    with_session(|s| {
        s.env
            .insert(name.to_string(), value.as_ref().map(|v| hash(v.as_bytes())));
    })?;
    Ok(value)
}

pub(crate) fn hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

// ---------------------------------------------------------------------------
// Randomness

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

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The generator for one call of function `name`: its own `seed=` argument, else the
/// render's seed (a fresh stream per call, in call order), else entropy (volatile).
fn rng_for(name: &str, args: &HashMap<String, Value>) -> TeraResult<Rng> {
    if let Some(v) = args.get("seed") {
        let seed = match v {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_i64().map(|i| i as u64))
                .unwrap_or_else(|| n.as_f64().unwrap_or(0.0).to_bits()),
            Value::String(s) => s.trim().parse::<u64>().unwrap_or_else(|_| fnv1a(s)),
            Value::Bool(b) => *b as u64,
            other => fnv1a(&other.to_string()),
        };
        return Ok(Rng::new(seed ^ fnv1a(name)));
    }
    with_session(|s| match s.seed {
        Some(seed) => {
            s.draws += 1;
            let mut mix = Rng::new(seed ^ s.draws.wrapping_mul(0xA076_1D64_78BD_642F));
            Rng::new(mix.next_u64() ^ fnv1a(name))
        }
        None => {
            s.volatile = true;
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(s.draws);
            s.draws += 1;
            if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                h.write_u128(d.as_nanos());
            }
            Rng::new(h.finish())
        }
    })
}

// ---------------------------------------------------------------------------
// Clock

fn now_ms() -> TeraResult<i64> {
    with_session(|s| match s.clock_ms {
        Some(ms) => ms,
        None => {
            s.volatile = true;
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        }
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2025-01-01T00:00:00Z` (UTC, seconds precision).
pub(crate) fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) into milliseconds since the epoch.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = std::str::from_utf8(&b[start..i.min(start + 3)]).ok()?;
        millis = format!("{frac:0<3}").parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            let o = oh * 60 + om;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

// ---------------------------------------------------------------------------
// TOML encoding

/// `value` as a TOML value (inline tables and arrays on one line).
pub(crate) fn toml_value(v: &Value) -> String {
    match v {
        Value::Null => "\"\"".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| !n.is_i64() && !n.is_u64()) {
                if f.is_nan() {
                    "nan".into()
                } else if f.is_infinite() {
                    if f > 0.0 { "inf" } else { "-inf" }.into()
                } else {
                    let s = f.to_string();
                    if s.contains(['.', 'e', 'E']) {
                        s
                    } else {
                        format!("{s}.0")
                    }
                }
            } else {
                n.to_string()
            }
        }
        Value::String(s) => toml_string(s),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            if o.is_empty() {
                return "{}".into();
            }
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A bare key when it can be one, else a quoted key.
pub(crate) fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        toml_string(k)
    }
}

fn value_to_plain_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Argument helpers

fn arg_str(args: &HashMap<String, Value>, key: &str) -> Option<String> {
    args.get(key).map(value_to_plain_string)
}

fn arg_i64(args: &HashMap<String, Value>, key: &str, default: i64) -> TeraResult<i64> {
    match args.get(key) {
        None => Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| tera::Error::msg(format!("`{key}` must be an integer"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| tera::Error::msg(format!("`{key}` must be an integer, got {s:?}"))),
        Some(other) => Err(tera::Error::msg(format!(
            "`{key}` must be an integer, got {other}"
        ))),
    }
}

fn arg_f64(args: &HashMap<String, Value>, key: &str, default: f64) -> TeraResult<f64> {
    match args.get(key) {
        None => Ok(default),
        Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(default)),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| tera::Error::msg(format!("`{key}` must be a number, got {s:?}"))),
        Some(other) => Err(tera::Error::msg(format!(
            "`{key}` must be a number, got {other}"
        ))),
    }
}

/// Bounds a count argument so a template cannot ask for gigabytes.
fn arg_count(
    args: &HashMap<String, Value>,
    key: &str,
    default: i64,
    max: i64,
) -> TeraResult<usize> {
    let n = arg_i64(args, key, default)?;
    if !(0..=max).contains(&n) {
        return Err(tera::Error::msg(format!(
            "`{key}` must be in 0..={max}, got {n}"
        )));
    }
    Ok(n as usize)
}

// ---------------------------------------------------------------------------
// Word lists for the fake generators

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Ken",
    "Dennis",
    "Margaret",
    "Edsger",
    "Frances",
    "John",
    "Radia",
    "Donald",
    "Hedy",
    "Tim",
    "Katherine",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Thompson",
    "Ritchie",
    "Hamilton",
    "Dijkstra",
    "Allen",
    "McCarthy",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
];
const COMPANY_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Cyberdyne",
    "Soylent",
    "Tyrell",
];
const COMPANY_B: &[&str] = &[
    "Corp",
    "Inc",
    "Labs",
    "Systems",
    "Industries",
    "Group",
    "LLC",
];
const TLD: &[&str] = &["com", "org", "net", "io", "dev", "test"];
const CITY: &[&str] = &[
    "Springfield",
    "Riverside",
    "Fairview",
    "Madison",
    "Georgetown",
    "Franklin",
    "Clinton",
    "Salem",
    "Oakland",
    "Ashland",
];
const STREET: &[&str] = &[
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Lake",
    "Hill",
    "Park",
    "Washington",
];
const STREET_KIND: &[&str] = &["St", "Ave", "Rd", "Blvd", "Ln", "Way"];
const COUNTRY: &[&str] = &[
    "Germany",
    "France",
    "Japan",
    "Brazil",
    "Canada",
    "Kenya",
    "India",
    "Norway",
    "Chile",
    "Australia",
];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "minim",
    "veniam",
    "quis",
    "nostrud",
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn uuid_from(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn words(rng: &mut Rng, n: usize) -> Vec<&'static str> {
    (0..n).map(|_| rng.pick(WORDS)).collect()
}

/// A fake generator: given its rng and arguments, a value.
type Gen = fn(&mut Rng, &HashMap<String, Value>) -> TeraResult<Value>;

fn s(v: impl Into<String>) -> TeraResult<Value> {
    Ok(Value::String(v.into()))
}

const GENERATORS: &[(&str, Gen)] = &[
    ("fake_int_range", |r, a| {
        let lo = arg_i64(a, "min", 0)?;
        let hi = arg_i64(a, "max", 100)?;
        Ok(Value::from(r.range(lo.min(hi), hi.max(lo))))
    }),
    ("fake_int", |r, a| {
        let lo = arg_i64(a, "min", 0)?;
        let hi = arg_i64(a, "max", 1000)?;
        Ok(Value::from(r.range(lo.min(hi), hi.max(lo))))
    }),
    ("fake_float", |r, a| {
        let lo = arg_f64(a, "min", 0.0)?;
        let hi = arg_f64(a, "max", 1.0)?;
        let x = lo + r.unit() * (hi - lo);
        let x = (x * 1e6).round() / 1e6;
        Ok(Number::from_f64(x).map_or(Value::Null, Value::Number))
    }),
    ("fake_bool", |r, a| {
        let ratio = arg_i64(a, "ratio", 50)?.clamp(0, 100);
        Ok(Value::Bool(r.range(0, 99) < ratio))
    }),
    ("fake_string", |r, a| {
        let n = arg_count(a, "len", 8, 4096)?;
        s((0..n)
            .map(|_| ALNUM[r.range(0, ALNUM.len() as i64 - 1) as usize] as char)
            .collect::<String>())
    }),
    ("fake_hex", |r, a| {
        let n = arg_count(a, "len", 16, 4096)?;
        s((0..n)
            .map(|_| char::from_digit(r.range(0, 15) as u32, 16).unwrap_or('0'))
            .collect::<String>())
    }),
    ("fake_uuid", |r, _| s(uuid_from(r))),
    ("fake_uuid_seeded", |r, _| s(uuid_from(r))),
    ("uuid_v4", |r, _| s(uuid_from(r))),
    ("fake_name", |r, _| {
        s(format!("{} {}", r.pick(FIRST), r.pick(LAST)))
    }),
    ("fake_first_name", |r, _| s(r.pick(FIRST))),
    ("fake_last_name", |r, _| s(r.pick(LAST))),
    ("fake_username", |r, _| {
        s(format!(
            "{}{}",
            r.pick(FIRST).to_lowercase(),
            r.range(1, 999)
        ))
    }),
    ("fake_email", |r, _| {
        s(format!(
            "{}.{}@{}.{}",
            r.pick(FIRST).to_lowercase(),
            r.pick(LAST).to_lowercase(),
            r.pick(COMPANY_A).to_lowercase(),
            r.pick(TLD)
        ))
    }),
    ("fake_company", |r, _| {
        s(format!("{} {}", r.pick(COMPANY_A), r.pick(COMPANY_B)))
    }),
    ("fake_ipv4", |r, _| {
        s(format!(
            "{}.{}.{}.{}",
            r.range(1, 223),
            r.range(0, 255),
            r.range(0, 255),
            r.range(1, 254)
        ))
    }),
    ("fake_ipv6", |r, _| {
        let groups: Vec<String> = (0..8)
            .map(|_| format!("{:x}", r.range(0, 0xffff)))
            .collect();
        s(groups.join(":"))
    }),
    ("fake_mac_address", |r, _| {
        let parts: Vec<String> = (0..6).map(|_| format!("{:02x}", r.range(0, 255))).collect();
        s(parts.join(":"))
    }),
    ("fake_port", |r, a| {
        let lo = arg_i64(a, "min", 1024)?;
        let hi = arg_i64(a, "max", 65535)?;
        Ok(Value::from(r.range(lo.clamp(1, 65535), hi.clamp(1, 65535))))
    }),
    ("fake_domain", |r, _| {
        s(format!(
            "{}.{}",
            r.pick(COMPANY_A).to_lowercase(),
            r.pick(TLD)
        ))
    }),
    ("fake_url", |r, _| {
        s(format!(
            "https://{}.{}/{}",
            r.pick(COMPANY_A).to_lowercase(),
            r.pick(TLD),
            r.pick(WORDS)
        ))
    }),
    ("fake_timestamp", |r, _| {
        // 2000-01-01 .. 2030-12-31
        let ms = r.range(946_684_800, 1_924_905_600) * 1000;
        s(format_rfc3339(ms))
    }),
    ("fake_date", |r, _| {
        let ms = r.range(946_684_800, 1_924_905_600) * 1000;
        s(format_rfc3339(ms)[..10].to_string())
    }),
    ("fake_time", |r, _| {
        s(format!(
            "{:02}:{:02}:{:02}",
            r.range(0, 23),
            r.range(0, 59),
            r.range(0, 59)
        ))
    }),
    ("fake_phone", |r, _| {
        s(format!(
            "+1-555-{:03}-{:04}",
            r.range(100, 999),
            r.range(0, 9999)
        ))
    }),
    ("fake_city", |r, _| s(r.pick(CITY))),
    ("fake_street", |r, _| {
        s(format!(
            "{} {} {}",
            r.range(1, 9999),
            r.pick(STREET),
            r.pick(STREET_KIND)
        ))
    }),
    ("fake_zip", |r, _| s(format!("{:05}", r.range(501, 99950)))),
    ("fake_country", |r, _| s(r.pick(COUNTRY))),
    ("fake_word", |r, _| s(r.pick(WORDS))),
    ("fake_words", |r, a| {
        let n = arg_count(a, "count", 3, 10_000)?;
        s(words(r, n).join(" "))
    }),
    ("fake_sentence", |r, a| {
        let lo = arg_count(a, "min", 4, 10_000)?;
        let hi = arg_count(a, "max", 10, 10_000)?.max(lo);
        let n = r.range(lo as i64, hi as i64) as usize;
        let mut text = words(r, n.max(1)).join(" ");
        if let Some(first) = text.get(..1) {
            text = first.to_uppercase() + &text[1..];
        }
        s(text + ".")
    }),
    ("fake_paragraph", |r, a| {
        let n = arg_count(a, "sentences", 3, 1000)?;
        let sentences: Vec<String> = (0..n.max(1))
            .map(|_| {
                let n = r.range(4, 10) as usize;
                let mut t = words(r, n).join(" ");
                if let Some(first) = t.get(..1) {
                    t = first.to_uppercase() + &t[1..];
                }
                t + "."
            })
            .collect();
        s(sentences.join(" "))
    }),
];

/// Names of all generator functions (for docs and tests).
pub fn generator_names() -> impl Iterator<Item = &'static str> {
    GENERATORS.iter().map(|(n, _)| *n)
}

// ---------------------------------------------------------------------------
// Registration

pub(crate) const UNSET: &str = "__clnrm_unset__";

fn env_fn(args: &HashMap<String, Value>) -> TeraResult<Value> {
    let name = arg_str(args, "name")
        .ok_or_else(|| tera::Error::msg("`env` needs `name=`: env(name=\"VAR\")"))?;
    match read_env(&name)? {
        Some(v) => Ok(Value::String(v)),
        None => match args.get("default") {
            Some(d) => Ok(d.clone()),
            None => Err(tera::Error::msg(format!(
                "environment variable `{name}` is not set (give a fallback with env(name=\"{name}\", default=\"...\"))"
            ))),
        },
    }
}

pub(crate) fn register(tera: &mut Tera) {
    tera.register_function("env", env_fn);
    tera.register_function("get_env", env_fn);
    tera.register_function("now_rfc3339", |_: &HashMap<String, Value>| {
        Ok(Value::String(format_rfc3339(now_ms()?)))
    });
    tera.register_function("now_unix", |_: &HashMap<String, Value>| {
        Ok(Value::from(now_ms()?.div_euclid(1000)))
    });
    tera.register_function("now_ms", |_: &HashMap<String, Value>| {
        Ok(Value::from(now_ms()?))
    });
    // Tera's own `now` reads the real clock: route it through the session.
    tera.register_function("now", |args: &HashMap<String, Value>| {
        let ms = now_ms()?;
        if matches!(args.get("timestamp"), Some(Value::Bool(true))) {
            Ok(Value::from(ms.div_euclid(1000)))
        } else {
            Ok(Value::String(format_rfc3339(ms)))
        }
    });
    tera.register_function("get_random", |args: &HashMap<String, Value>| {
        let lo = arg_i64(args, "start", 0)?;
        let hi = arg_i64(args, "end", i64::MAX)?;
        if hi <= lo {
            return Err(tera::Error::msg("get_random needs start < end"));
        }
        let mut r = rng_for("get_random", args)?;
        Ok(Value::from(r.range(lo, hi - 1)))
    });
    // Tera's `range` loops forever with step_by=0 and can allocate without bound.
    tera.register_function("range", |args: &HashMap<String, Value>| {
        let start = arg_i64(args, "start", 0)?;
        let end = arg_i64(
            args,
            "end",
            i64::MIN, // required
        )?;
        if !args.contains_key("end") {
            return Err(tera::Error::msg("range needs `end=`"));
        }
        let step = arg_i64(args, "step_by", 1)?;
        if step <= 0 {
            return Err(tera::Error::msg("range needs step_by > 0"));
        }
        let len = if end > start {
            ((end as i128 - start as i128 + step as i128 - 1) / step as i128) as u128
        } else {
            0
        };
        if len > 1_000_000 {
            return Err(tera::Error::msg("range of more than 1,000,000 numbers"));
        }
        Ok(Value::Array(
            (0..len as i64)
                .map(|i| Value::from(start + i * step))
                .collect(),
        ))
    });
    tera.register_function("sha256", |args: &HashMap<String, Value>| {
        let s = arg_str(args, "s").ok_or_else(|| tera::Error::msg("`sha256` needs `s=`"))?;
        let digest = Sha256::digest(s.as_bytes());
        Ok(Value::String(
            digest.iter().map(|b| format!("{b:02x}")).collect(),
        ))
    });
    tera.register_function("toml_encode", |args: &HashMap<String, Value>| {
        let v = args
            .get("value")
            .ok_or_else(|| tera::Error::msg("`toml_encode` needs `value=`"))?;
        Ok(Value::String(toml_value(v)))
    });
    tera.register_filter("toml_encode", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(toml_value(v)))
    });
    tera.register_filter("toml_key", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(toml_key(&value_to_plain_string(v))))
    });
    for &(name, generator) in GENERATORS {
        tera.register_function(name, move |args: &HashMap<String, Value>| {
            let mut rng = rng_for(name, args)?;
            generator(&mut rng, args)
        });
    }
    // Helpers the preprocessor's rewrites call.
    tera.register_function("__clnrm_map", |args: &HashMap<String, Value>| {
        let mut map = Map::new();
        for i in 0.. {
            let (Some(k), Some(v)) = (args.get(&format!("k{i}")), args.get(&format!("v{i}")))
            else {
                break;
            };
            map.insert(value_to_plain_string(k), v.clone());
        }
        Ok(Value::Object(map))
    });
    tera.register_function("__clnrm_list", |args: &HashMap<String, Value>| {
        let mut list = Vec::new();
        while let Some(v) = args.get(&format!("i{}", list.len())) {
            list.push(v.clone());
        }
        Ok(Value::Array(list))
    });
    tera.register_function("__clnrm_none", |_: &HashMap<String, Value>| Ok(Value::Null));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        for s in [
            "2025-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "1999-12-31T12:34:56Z",
        ] {
            let ms = parse_rfc3339(s).unwrap();
            assert_eq!(format_rfc3339(ms), s);
        }
        assert_eq!(
            parse_rfc3339("2025-01-01T00:00:00Z"),
            Some(1_735_689_600_000)
        );
        assert_eq!(
            parse_rfc3339("2025-01-01T02:00:00.5+02:00"),
            Some(1_735_689_600_500)
        );
        for bad in [
            "",
            "2025-13-01T00:00:00Z",
            "2025-01-01",
            "2025-01-01T00:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn toml_values() {
        let v = serde_json::json!({"a b": [1, "x\"y", true, 1.5], "k": {}});
        assert_eq!(
            toml_value(&v),
            r#"{ "a b" = [1, "x\"y", true, 1.5], k = {} }"#
        );
        assert_eq!(toml_string("a\nb\\"), r#""a\nb\\""#);
    }

    #[test]
    fn rng_ranges_are_inclusive_and_bounded() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let x = r.range(-3, 3);
            assert!((-3..=3).contains(&x));
        }
        assert_eq!(r.range(5, 5), 5);
        let wide = r.range(i64::MIN, i64::MAX);
        assert_ne!(wide, r.range(i64::MIN, i64::MAX));
    }
}
