//! `clnrm run --dry-run` tells the truth about invalid tests: it exits 1 and ends with the
//! same kind of summary as `validate`.

mod common;

use common::{docker_ready, json_events, shell_test, TestProject};

/// A valid test mutated a few ways that each make it invalid.
const MUTATIONS: [(&str, &str); 4] = [
    ("command = ", "comand = "),
    ("name = \"check\"", "name = 1"),
    ("[[steps]]", "[[steps]"),
    ("version = \"1.0\"", "version = \"1.0\"\nretries = \"two\""),
];

#[test]
fn a_dry_run_over_invalid_tests_exits_1_with_validates_summary() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    for i in 0..3 {
        project.write(
            &format!("tests/ok{i}.clnrm.toml"),
            &shell_test(&format!("ok{i}"), "true"),
        );
    }
    for (i, (from, to)) in MUTATIONS.iter().enumerate() {
        let text = shell_test(&format!("bad{i}"), "true").replacen(from, to, 1);
        project.write(&format!("tests/bad{i}.clnrm.toml"), &text);
    }
    let validate = project.clnrm(&["--strict", "validate"]);
    validate
        .expect_code(1)
        .expect_contains("3 valid, 4 invalid");

    let dry = project.clnrm(&["--strict", "run", "--dry-run"]);
    dry.expect_code(1);
    let last = dry.stdout().lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("3 valid, 4 invalid, 0 warnings in "),
        "last line: {last}\n{}",
        dry.all()
    );
    let errors = dry
        .stdout()
        .lines()
        .filter(|l| l.starts_with("error ") && l.contains(" tests/bad"))
        .count();
    assert_eq!(errors, 4, "{}", dry.all());

    let json = project.clnrm(&["--strict", "run", "--dry-run", "--format", "json"]);
    json.expect_code(1);
    let events = json_events(&json.stdout());
    let last = events.last().unwrap();
    assert_eq!(last["event"], "dry_run_finished");
    assert_eq!(
        (last["valid"].clone(), last["invalid"].clone()),
        (3.into(), 4.into())
    );

    // Many more mutations, some invalid: the dry run counts as validate counts.
    let base = shell_test("mutant", "true");
    for seed in 0..60u64 {
        project.write(
            &format!("tests/mutant{seed}.clnrm.toml"),
            &mutate(&base, seed),
        );
    }
    let counts = |run: &common::Run| {
        let out = run.stdout();
        let last = out.lines().last().unwrap_or_default().to_string();
        let words: Vec<&str> = last.split(' ').collect();
        assert!(last.contains(" valid, "), "{}", run.all());
        (words[0].to_string(), words[2].to_string())
    };
    let validate = project.clnrm(&["validate"]);
    let dry = project.clnrm(&["run", "--dry-run"]);
    dry.expect_code(1);
    assert_eq!(counts(&dry), counts(&validate));
    assert_ne!(counts(&dry).1, "0");

    // Without the invalid ones the dry run passes, with the same summary.
    for seed in 0..60u64 {
        std::fs::remove_file(project.path(&format!("tests/mutant{seed}.clnrm.toml"))).unwrap();
    }
    for i in 0..MUTATIONS.len() {
        std::fs::remove_file(project.path(&format!("tests/bad{i}.clnrm.toml"))).unwrap();
    }
    project
        .clnrm(&["run", "--dry-run"])
        .expect_code(0)
        .expect_contains("3 valid, 0 invalid, 0 warnings in ");
}

/// A deterministic mutation of `text`: a byte flipped, dropped or duplicated somewhere.
fn mutate(text: &str, seed: u64) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let at = next(bytes.len());
    match next(3) {
        0 => bytes[at] ^= 1 << next(7),
        1 => {
            bytes.remove(at);
        }
        _ => bytes.insert(at, bytes[at]),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
