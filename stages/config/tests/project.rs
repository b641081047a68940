//! `cleanroom.toml` and the duration / size spellings shared with the CLI.

use clnrm_config::{parse_duration_ms, parse_project, parse_size_bytes, ProjectConfig, Severity};

#[test]
fn full_project_file() {
    let text = r#"
[vars]
image = "alpine:3.20"
retries = 3

[defaults]
image = "alpine:3.20"
step_timeout = "60s"

[cache]
dir = ".clnrm/cache"
max_size = "2GiB"
max_age = "30d"

[run]
jobs = 0
reuse = true

[dev]
debounce_ms = 300

[determinism]
seed = 7
freeze_clock = "2025-01-01T00:00:00Z"
"#;
    let (p, warnings) = parse_project("cleanroom.toml", text, true).expect("valid");
    assert!(warnings.is_empty());
    assert_eq!(p.vars.get("image").map(String::as_str), Some("alpine:3.20"));
    assert_eq!(p.vars.get("retries").map(String::as_str), Some("3"));
    assert_eq!(p.default_image.as_deref(), Some("alpine:3.20"));
    assert_eq!(p.default_step_timeout_ms, Some(60_000));
    assert_eq!(p.cache_dir.as_deref(), Some(".clnrm/cache"));
    assert_eq!(p.cache_max_size, Some(2 * 1024 * 1024 * 1024));
    assert_eq!(p.cache_max_age_ms, Some(30 * 86_400_000));
    assert_eq!(p.run_jobs, Some(0));
    assert!(p.run_reuse);
    assert_eq!(p.dev_debounce_ms, Some(300));
    assert_eq!(p.seed, Some(7));
    assert_eq!(p.freeze_clock.as_deref(), Some("2025-01-01T00:00:00Z"));
}

#[test]
fn every_section_is_optional() {
    let (p, w) = parse_project("cleanroom.toml", "", false).expect("valid");
    assert_eq!(p, ProjectConfig::default());
    assert!(w.is_empty());
    let (p, _) =
        parse_project("cleanroom.toml", "[cache]\nmax_size = 1048576\n", false).expect("valid");
    assert_eq!(p.cache_max_size, Some(1_048_576));
}

#[test]
fn unknown_keys_warn_and_fail_under_strict() {
    let text = "[cache]\nmax_sise = \"1GB\"\n[runn]\njobs = 2\n";
    let (_, w) = parse_project("cleanroom.toml", text, false).expect("valid");
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].key_path.as_deref(), Some("cache.max_sise"));
    assert_eq!(w[0].hint.as_deref(), Some("did you mean `max_size`?"));
    assert_eq!(w[0].line_col, Some((2, 1)));
    assert_eq!(w[1].hint.as_deref(), Some("did you mean `run`?"));
    let errs = parse_project("cleanroom.toml", text, true).expect_err("strict");
    assert!(errs.iter().all(|d| d.severity == Severity::Error));
    assert_eq!(errs.len(), 2);
}

#[test]
fn bad_values_name_their_key() {
    let text = "[defaults]\nstep_timeout = \"1 fortnight\"\n[cache]\nmax_size = \"2 parsecs\"\nmax_age = 30\n[run]\njobs = -1\nreuse = \"yes\"\n[vars]\nx = [1]\n";
    let errs = parse_project("cleanroom.toml", text, false).expect_err("invalid");
    let keys: Vec<&str> = errs.iter().filter_map(|d| d.key_path.as_deref()).collect();
    assert_eq!(
        keys,
        [
            "defaults.step_timeout",
            "cache.max_size",
            "cache.max_age",
            "run.jobs",
            "run.reuse",
            "vars.x"
        ]
    );
    let d = &parse_project("cleanroom.toml", "[run\n", false).expect_err("syntax")[0];
    assert_eq!(d.line_col.map(|l| l.0), Some(1));
    assert_eq!(d.file, "cleanroom.toml");
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("200ms"), Ok(200));
    assert_eq!(parse_duration_ms("10s"), Ok(10_000));
    assert_eq!(parse_duration_ms("1m"), Ok(60_000));
    assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
    assert_eq!(parse_duration_ms("30d"), Ok(2_592_000_000));
    assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
    assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
    assert_eq!(parse_duration_ms(" 0s "), Ok(0));
    for bad in [
        "",
        "10",
        "s",
        "10x",
        "1.2.3s",
        "-1s",
        "10 s",
        "1m 30s",
        "1w",
        "2hours",
        "1M",
        "99999999999999999999999d",
        "213503982334601d",
        // A point needs digits on both sides (humantime's rule; the hand parser took these).
        ".5s",
        "5.s",
    ] {
        assert!(
            parse_duration_ms(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
    assert!(parse_duration_ms("10")
        .unwrap_err()
        .contains("missing unit"));
    assert!(parse_duration_ms("1w")
        .unwrap_err()
        .contains("unknown unit `w` (ms, s, m, h, d)"));
}

#[test]
fn sizes() {
    assert_eq!(parse_size_bytes("1024"), Ok(1024));
    assert_eq!(parse_size_bytes("500MB"), Ok(500_000_000));
    assert_eq!(parse_size_bytes("2GiB"), Ok(2_147_483_648));
    assert_eq!(parse_size_bytes("1.5KiB"), Ok(1_536));
    assert_eq!(parse_size_bytes("10 kb"), Ok(10_000));
    assert_eq!(parse_size_bytes("3TiB"), Ok(3 * (1u64 << 40)));
    assert_eq!(parse_size_bytes("7B"), Ok(7));
    assert_eq!(parse_size_bytes(" 5MB "), Ok(5_000_000));
    // A part byte is dropped (bytesize's rule; the hand parser rounded it).
    assert_eq!(parse_size_bytes("1.5B"), Ok(1));
    assert_eq!(parse_size_bytes("18446744073709551615"), Ok(u64::MAX));
    for bad in [
        "",
        "GiB",
        "2 parsecs",
        "1.5",
        "-1MB",
        "2GiBs",
        "1K",
        "1PB",
        "1.2.3MB",
        "20000000TB",
        "18446744073709551616",
    ] {
        assert!(parse_size_bytes(bad).is_err(), "{bad:?} should be rejected");
    }
    assert!(parse_size_bytes("20000000TB")
        .unwrap_err()
        .contains("too large"));
}
