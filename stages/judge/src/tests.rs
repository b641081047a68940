//! The judge on plain data. The JSONPath cases are RFC 9535's own examples: the §1.5 store
//! (Table 2) and the §2.3.4 slices.

use super::*;
use crate::captures::{references, substitute, substitute_expectations};

/// RFC 9535 §1.5's bookstore.
pub(crate) const STORE: &str = r#"{ "store": {
    "book": [
      { "category": "reference", "author": "Nigel Rees",
        "title": "Sayings of the Century", "price": 8.95 },
      { "category": "fiction", "author": "Evelyn Waugh",
        "title": "Sword of Honour", "price": 12.99 },
      { "category": "fiction", "author": "Herman Melville",
        "title": "Moby Dick", "isbn": "0-553-21311-3", "price": 8.99 },
      { "category": "fiction", "author": "J. R. R. Tolkien",
        "title": "The Lord of the Rings", "isbn": "0-395-19395-8", "price": 22.99 }
    ],
    "bicycle": { "color": "red", "price": 399 }
  }
}"#;

const LETTERS: &str = r#"["a", "b", "c", "d", "e", "f", "g"]"#;

fn run(stdout: &str) -> StepRun<'_> {
    StepRun {
        exit_code: Some(0),
        timed_out: false,
        timeout_ms: 1000,
        stdout,
        stderr: "",
    }
}

fn check(path: &str, check: JsonCheckKind) -> JsonCheck {
    JsonCheck {
        path: path.into(),
        check,
    }
}

fn json_judgement(stdout: &str, checks: Vec<JsonCheck>) -> Judgement {
    let e = Expectations {
        json: checks,
        ..Expectations::default()
    };
    judge(&Compiled::new(&e).unwrap(), &run(stdout))
}

fn passes(stdout: &str, checks: Vec<JsonCheck>) {
    let j = json_judgement(stdout, checks);
    assert!(j.passed(), "{:#?}", j.mismatches);
}

fn count(path: &str, n: u64) -> JsonCheck {
    check(path, JsonCheckKind::Count(n))
}

fn equals(path: &str, json: &str) -> JsonCheck {
    check(path, JsonCheckKind::Equals(json.into()))
}

#[test]
fn rfc_9535_table_2_store_examples() {
    passes(
        STORE,
        vec![
            // The authors of all books in the store.
            count("$.store.book[*].author", 4),
            // All authors.
            count("$..author", 4),
            // All things in the store: a list of books and a red bicycle.
            count("$.store.*", 2),
            // The prices of everything in the store.
            count("$.store..price", 5),
            // The third book, and its author.
            equals("$..book[2].title", r#""Moby Dick""#),
            equals("$..book[2].author", r#""Herman Melville""#),
            // The third book has no publisher: empty result.
            check("$..book[2].publisher", JsonCheckKind::Exists(false)),
            // The last book in order.
            equals("$..book[-1].title", r#""The Lord of the Rings""#),
            // The first two books, by union and by slice.
            count("$..book[0,1]", 2),
            count("$..book[:2]", 2),
            // All books with an ISBN number.
            count("$..book[?@.isbn]", 2),
            // All books cheaper than 10.
            count("$..book[?@.price<10]", 2),
            check(
                "$..book[?@.price<10].title",
                JsonCheckKind::Matches("^(Sayings|Moby)".into()),
            ),
            // All member values and array elements in the input value.
            count("$..*", 27),
            check("$.store.bicycle", JsonCheckKind::Exists(true)),
            equals("$.store.bicycle", r#"{"price": 399.0, "color": "red"}"#),
        ],
    );
}

#[test]
fn rfc_9535_slice_examples() {
    passes(
        LETTERS,
        vec![
            count("$[1:3]", 2),
            check("$[1:3]", JsonCheckKind::Matches("^[bc]$".into())),
            count("$[5:]", 2),
            count("$[1:5:2]", 2),
            count("$[5:1:-2]", 2),
            count("$[::-1]", 7),
            equals("$[-1:]", r#""g""#),
            check("$[1:5:2]", JsonCheckKind::Matches("^[bd]$".into())),
            check("$[5:1:-2]", JsonCheckKind::Matches("^[fd]$".into())),
        ],
    );
}

#[test]
fn a_failed_json_check_shows_the_path_the_expectation_and_the_nodes() {
    let j = json_judgement(
        STORE,
        vec![
            equals("$..book[*].author", r#""Nigel Rees""#),
            count("$..book[?@.price>20].title", 0),
            check(
                "$.store.bicycle.color",
                JsonCheckKind::Matches("^blue$".into()),
            ),
            check("$.store.car", JsonCheckKind::Exists(true)),
        ],
    );
    let m = &j.mismatches;
    assert_eq!(m.len(), 4, "{m:#?}");
    assert_eq!(m[0].key, "expected_json[0]");
    assert_eq!(
        m[0].expected,
        "`$..book[*].author` to be exactly one node equal to \"Nigel Rees\""
    );
    assert!(
        m[0].actual
            .starts_with("4 nodes: [\n  \"Nigel Rees\",\n  \"Evelyn Waugh\""),
        "{}",
        m[0].actual
    );
    assert_eq!(
        m[1].expected,
        "`$..book[?@.price>20].title` to select 0 nodes"
    );
    assert_eq!(m[1].actual, "1 node: \"The Lord of the Rings\"");
    assert_eq!(
        m[2].expected,
        "`$.store.bicycle.color` to select strings matching /^blue$/"
    );
    assert_eq!(m[2].actual, "1 node: \"red\"");
    assert_eq!(m[3].expected, "`$.store.car` to select a node");
    assert_eq!(m[3].actual, "no node");
}

#[test]
fn big_nodes_are_cut_to_a_readable_size() {
    let big = format!(
        r#"{{"items": [{}]}}"#,
        vec!["\"xxxxxxxxxx\""; 500].join(",")
    );
    let j = json_judgement(&big, vec![count("$.items", 0)]);
    let actual = &j.mismatches[0].actual;
    assert!(actual.len() < 700, "{}", actual.len());
    assert!(actual.contains("more bytes)"), "{actual}");
}

#[test]
fn stdout_that_is_not_json_fails_showing_where_parsing_stopped() {
    let j = json_judgement(
        "{\n  \"id\": 42,\n  \"name\": oops\n}\n",
        vec![check("$.id", JsonCheckKind::Exists(true))],
    );
    let m = &j.mismatches[0];
    assert_eq!(m.key, "expected_json");
    assert_eq!(m.expected, "stdout to be JSON");
    assert!(m.actual.contains("line 3 column 11"), "{}", m.actual);
    assert!(m.actual.contains("`  \"name\": oops`"), "{}", m.actual);
    let j = json_judgement("", vec![check("$.id", JsonCheckKind::Exists(true))]);
    assert_eq!(j.mismatches[0].actual, "stdout was empty, not JSON");
}

#[test]
fn a_bad_path_does_not_compile_and_says_where() {
    let e = Expectations {
        json: vec![check("$.items[?@.x ==]", JsonCheckKind::Exists(true))],
        ..Expectations::default()
    };
    let err = Compiled::new(&e).unwrap_err();
    assert_eq!(err.key, "expected_json[0]");
    assert!(
        err.message
            .starts_with("invalid JSONPath (RFC 9535) at character"),
        "{}",
        err.message
    );
}

#[test]
fn exit_code_and_timeout_are_the_whole_verdict_when_wrong() {
    let e = Expectations {
        exit_code: 3,
        output_regex: Some("never".into()),
        ..Expectations::default()
    };
    let c = Compiled::new(&e).unwrap();
    let mut r = run("out");
    r.exit_code = Some(3);
    assert_eq!(judge(&c, &r).mismatches[0].key, "expected_output_regex");
    r.exit_code = Some(1);
    let j = judge(&c, &r);
    assert_eq!(j.mismatches.len(), 1);
    assert_eq!(
        (
            j.mismatches[0].expected.as_str(),
            j.mismatches[0].actual.as_str()
        ),
        ("exit code 3", "exit code 1")
    );
    r.timed_out = true;
    r.timeout_ms = 1500;
    assert_eq!(judge(&c, &r).mismatches[0].actual, "timed out after 1500ms");
}

#[test]
fn regexes_that_must_not_match_name_the_match_and_its_line() {
    let e = Expectations {
        output_regex: Some("^ready$".into()),
        output_regex_not: Some("ERROR|panic".into()),
        stderr_regex_not: Some("warn".into()),
        ..Expectations::default()
    };
    let c = Compiled::new(&e).unwrap();
    assert!(judge(&c, &run("ready\n")).passed());
    let j = judge(&c, &run("starting\nready\nERROR: disk full\n"));
    assert_eq!(j.mismatches.len(), 1);
    assert_eq!(j.mismatches[0].key, "expected_output_regex_not");
    assert_eq!(
        j.mismatches[0].expected,
        "stdout not matching /ERROR|panic/"
    );
    assert_eq!(
        j.mismatches[0].actual,
        "stdout matched `ERROR` on line 3: ERROR: disk full"
    );
}

#[test]
fn captures_take_one_json_node_or_a_regex_group() {
    let e = Expectations {
        captures: vec![
            Capture {
                name: "id".into(),
                source: CaptureSource::Json("$.id".into()),
                redact: false,
            },
            Capture {
                name: "n".into(),
                source: CaptureSource::Json("$.n".into()),
                redact: true,
            },
            Capture {
                name: "token".into(),
                source: CaptureSource::Regex {
                    pattern: "token=(\\w+)".into(),
                    from: Stream::Stderr,
                },
                redact: false,
            },
        ],
        ..Expectations::default()
    };
    let c = Compiled::new(&e).unwrap();
    let mut r = run(r#"{"id": "a b \"c\"", "n": 7}"#);
    r.stderr = "note: token=s3cr3t\n";
    let j = judge(&c, &r);
    assert!(j.passed(), "{:?}", j.mismatches);
    let got: Vec<(&str, &str, bool)> = j
        .captured
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_str(), c.redact))
        .collect();
    assert_eq!(
        got,
        vec![
            ("id", "a b \"c\"", false),
            ("n", "7", true),
            ("token", "s3cr3t", false)
        ]
    );
    let j = judge(&c, &run(r#"{"m": [1, 2]}"#));
    let keys: Vec<&str> = j.mismatches.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["capture.id", "capture.n", "capture.token"]);
    assert_eq!(
        j.mismatches[0].expected,
        "`$.id` to select exactly one node"
    );
    assert_eq!(j.mismatches[0].actual, "no node");
    assert_eq!(j.mismatches[2].expected, "stderr matching /token=(\\w+)/");
    assert_eq!(j.mismatches[2].actual, "stderr was empty");
}

#[test]
fn references_are_found_and_substituted_whole() {
    let text = "id=${captures.item} home=${HOME} lit=$${captures.item}";
    assert_eq!(
        references(text).unwrap(),
        vec![captures::Reference {
            name: "item".into(),
            offset: 3
        }]
    );
    let value = "a b \"c\" $x";
    let out = substitute(text, &|n| (n == "item").then(|| value.to_string())).unwrap();
    assert_eq!(out, "id=a b \"c\" $x home=${HOME} lit=${captures.item}");
    assert_eq!(
        substitute("${captures.other}", &|_| None).unwrap_err(),
        "other"
    );
    assert!(references("${captures.item")
        .unwrap_err()
        .1
        .contains("no closing"));
    assert!(references("${captures.1x}")
        .unwrap_err()
        .1
        .contains("not a capture name"));
}

#[test]
fn substituted_expectations_match_a_value_literally() {
    let e = Expectations {
        output_regex: Some("^id: ${captures.id}$".into()),
        json: vec![
            equals("$.name", r#"{"full": "${captures.id}"}"#),
            check("$.tag", JsonCheckKind::Matches("^${captures.id}$".into())),
        ],
        ..Expectations::default()
    };
    let id = "a.b (\"c\")";
    let e = substitute_expectations(&e, &|_| Some(id.to_string())).unwrap();
    let c = Compiled::new(&e).unwrap();
    let stdout = r#"{"name": {"full": "a.b (\"c\")"}, "tag": "a.b (\"c\")"}"#;
    let j = judge(&c, &run(stdout));
    assert_eq!(j.mismatches.len(), 1, "{:?}", j.mismatches);
    assert_eq!(j.mismatches[0].key, "expected_output_regex");
    let stdout_line = format!("id: {id}\n");
    let e2 = Expectations {
        output_regex: e.output_regex.clone(),
        ..Expectations::default()
    };
    assert!(judge(&Compiled::new(&e2).unwrap(), &run(&stdout_line)).passed());
    assert!(!judge(&Compiled::new(&e2).unwrap(), &run("id: aXb (\"c\")\n")).passed());
}
