//! Template functions and filters: `env`, the clock, hashes, `toml_encode`, the
//! deterministic `fake_*` generators, and the internal helpers the preprocessor's
//! rewrites call (`__clnrm_map`, `__clnrm_list`, `__clnrm_none`). This file
//! registers them; the rooms: `session` (what a render may read and what it read),
//! `args` (argument reading), `random`, `clock`, `toml_encode`, `fake`.

mod args;
mod clock;
mod fake;
mod random;
mod session;
mod toml_encode;

use std::collections::HashMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tera::{Result as TeraResult, Tera};

use args::{arg_i64, arg_str, value_to_plain_string};
pub(crate) use clock::parse_rfc3339;
use clock::{format_rfc3339, now_ms};
use fake::GENERATORS;
use random::rng_for;
use session::read_env;
pub(crate) use session::{hash, SessionGuard};
use toml_encode::{toml_key, toml_value};

/// Names of all generator functions (for docs and tests).
pub fn generator_names() -> impl Iterator<Item = &'static str> {
    GENERATORS.iter().map(|(name, _)| *name)
}

/// The sentinel default the preprocessor gives a parameter whose real default
/// Tera 1 cannot express (see `pre`).
pub(crate) const UNSET: &str = "__clnrm_unset__";

/// `env(name=, default=)`: an environment variable, read through the session.
fn env_fn(args: &HashMap<String, Value>) -> TeraResult<Value> {
    let name = arg_str(args, "name")
        .ok_or_else(|| tera::Error::msg("`env` needs `name=`: env(name=\"VAR\")"))?;
    match read_env(&name)? {
        Some(value) => Ok(Value::String(value)),
        None => match args.get("default") {
            Some(default) => Ok(default.clone()),
            None => Err(tera::Error::msg(format!(
                "environment variable `{name}` is not set (give a fallback with env(name=\"{name}\", default=\"...\"))"
            ))),
        },
    }
}

/// Registers every function and filter of the crate docs on `tera`.
pub(crate) fn register(tera: &mut Tera) {
    tera.register_function("env", env_fn);
    tera.register_function("get_env", env_fn);
    tera.register_function("now_rfc3339", |_: &HashMap<String, Value>| {
        Ok(Value::String(format_rfc3339(now_ms()?)?))
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
            Ok(Value::String(format_rfc3339(ms)?))
        }
    });
    tera.register_function("get_random", |args: &HashMap<String, Value>| {
        let lo = arg_i64(args, "start", 0)?;
        let hi = arg_i64(args, "end", i64::MAX)?;
        if hi <= lo {
            return Err(tera::Error::msg("get_random needs start < end"));
        }
        let mut rng = rng_for("get_random", args)?;
        Ok(Value::from(rng.range(lo, hi - 1)))
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
                .map(|index| Value::from(start + index * step))
                .collect(),
        ))
    });
    tera.register_function("sha256", |args: &HashMap<String, Value>| {
        let input = arg_str(args, "s").ok_or_else(|| tera::Error::msg("`sha256` needs `s=`"))?;
        let digest = Sha256::digest(input.as_bytes());
        Ok(Value::String(
            digest.iter().map(|byte| format!("{byte:02x}")).collect(),
        ))
    });
    tera.register_function("toml_encode", |args: &HashMap<String, Value>| {
        let value = args
            .get("value")
            .ok_or_else(|| tera::Error::msg("`toml_encode` needs `value=`"))?;
        Ok(Value::String(toml_value(value)?))
    });
    tera.register_filter(
        "toml_encode",
        |value: &Value, _: &HashMap<String, Value>| Ok(Value::String(toml_value(value)?)),
    );
    tera.register_filter("toml_key", |key: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(toml_key(&value_to_plain_string(key))?))
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
        for entry in 0.. {
            let (Some(key), Some(value)) = (
                args.get(&format!("k{entry}")),
                args.get(&format!("v{entry}")),
            ) else {
                break;
            };
            map.insert(value_to_plain_string(key), value.clone());
        }
        Ok(Value::Object(map))
    });
    tera.register_function("__clnrm_list", |args: &HashMap<String, Value>| {
        let mut list = Vec::new();
        while let Some(item) = args.get(&format!("i{}", list.len())) {
            list.push(item.clone());
        }
        Ok(Value::Array(list))
    });
    tera.register_function("__clnrm_none", |_: &HashMap<String, Value>| Ok(Value::Null));
}
