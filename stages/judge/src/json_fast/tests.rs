//! The fast path against the slow one (serde_json + serde_json_path), which is the
//! reference: same nodes (as a multiset), same verdicts, same numbers, and a parser that
//! accepts nothing serde_json refuses.

use serde_json::Value as JsonValue;
use serde_json_path::JsonPath;

use super::doc::{number, Doc, Number, Value};
use super::{compile, eval, judge};
use crate::json::CompiledJsonCheck;
use crate::{JsonCheck, JsonCheckKind};

use crate::tests::STORE;

/// Escaped and non-ASCII keys and strings.
const ESCAPES: &str = r#"{"a b": 1, "\u00e9t\u00e9": "\ud83d\ude00", "quote\"d": "x\ny",
  "é": {"k": "v"}, "tab\t": [1, "\\"], "o": {"a": "\u0041"}, "a": "b", "sl\/": "/"}"#;

/// Arrays in arrays, equal-looking values of different number forms, empty containers.
const NESTED: &str = r#"{"m": [[1, 2], [3, [4, 5]], [], {}], "a": [1, 1.0, "1", true, null],
  "b": [1], "c": [1.0], "d": {"x": 1}, "e": {"x": 1.0}, "f": [1], "g": {"x": 1},
  "e0": [], "o0": {}, "n": null, "t": true, "s": "", "x": [{"a": [1, {"b": 2}]}, {"a": 3}]}"#;

/// Numbers of every form.
const NUMBERS: &str = r#"{"n": [0, -0, 1, -1, 1.0, 1.5, -1.5, 1e2, 1E+2, 1e-2, 0.1, 10, 2,
  18446744073709551615, 18446744073709551616, -9223372036854775808, -9223372036854775809,
  9007199254740993, 123456789012345678901234567890, 1.7976931348623157e308, 5e-324,
  0.30000000000000004, 3.14159265358979323846264338327950288],
  "v": [{"p": 1}, {"p": 1.0}, {"p": -0}, {"p": 0}, {"p": 0.0}, {"p": "1"}, {"p": null},
  {"p": true}, {"p": false}, {"p": [1]}, {"p": {"q": 1}}, {"p": 2.5}, {"p": "abc"},
  {"p": "abd"}, {"p": 10}, {"p": 18446744073709551615}, {}]}"#;

const DOCS: &[&str] = &[
    STORE, ESCAPES, NESTED, NUMBERS, "[]", "{}", "1", "\"s\"", "null",
];

/// Every construct of the subset; RFC 9535's examples first.
const PATHS: &[&str] = &[
    "$",
    "$.store.book[*].author",
    "$..author",
    "$.store.*",
    "$.store..price",
    "$..book[2]",
    "$..book[2].author",
    "$..book[2].publisher",
    "$..book[-1]",
    "$..book[0,1]",
    "$..book[:2]",
    "$..book[?@.isbn]",
    "$..book[?@.price<10]",
    "$..*",
    "$..book[?@.price<10 && @.category=='fiction']",
    "$..book[?@.price<10 || @.isbn]",
    "$..book[?!@.isbn]",
    "$..book[?!(@.price<10)]",
    "$..book[?(@.price>20 || @.price<9) && !@.isbn]",
    "$..book[?@.author > 'J']",
    "$..book[?@.author <= 'Herman Melville']",
    "$..book[?@.price >= 8.99]",
    "$..book[?@.price == 8.95]",
    "$..book[?@.price != 8.95]",
    "$..book[?@.isbn == null]",
    "$..book[?@.isbn != null]",
    "$..book[?@.missing == @.absent]",
    "$..book[?$.store.bicycle.color == 'red']",
    "$..book[?$.store.bicycle]",
    "$.store.book[?@.price < $.store.bicycle.price].title",
    "$['store']['book'][0]['title']",
    "$[\"store\"][\"bicycle\"]",
    "$.store['book', 'bicycle']",
    "$.store.book[1:3]",
    "$.store.book[::2]",
    "$.store.book[::-1]",
    "$.store.book[-2:]",
    "$.store.book[:-2:1]",
    "$.store.book[3:0:-1]",
    "$.store.book[5:-10:-2]",
    "$.store.book[0:0]",
    "$.store.book[::0]",
    "$.store.book[ 1 : 3 ]",
    "$.store.book[ 0 , -1 ]",
    "$.store.book[1:2:]",
    "$ .store .book [0]",
    "$..[0]",
    "$..['price','author']",
    "$..price",
    "$..[*]",
    "$.*.*",
    "$[*]",
    "$['a b']",
    "$['\\u00e9t\\u00e9']",
    "$.été",
    "$.é.k",
    "$[\"quote\\\"d\"]",
    "$['quote\"d']",
    "$['tab\\t'][1]",
    "$['sl/']",
    "$[?@ == 'b']",
    "$[?@.a == 'A']",
    "$.m[*][1]",
    "$.m[1][1][0]",
    "$.m[?@[0] == 3]",
    "$.m[?@[-1]]",
    "$.m[?@[-1] == 2]",
    "$.m[?@ == $.e0]",
    "$.m[?@ == $.o0]",
    "$.m[?@ != $.o0]",
    "$.a[?@ == 1]",
    "$.a[?@ == '1']",
    "$.a[?@ == true]",
    "$.a[?@ == null]",
    "$.a[?@ != 1]",
    "$.a[?@ > 0]",
    "$.a[?@ >= true]",
    "$.a[?@ < true]",
    "$.a[?@ > null]",
    "$.a[?@ >= null]",
    "$[?@ == $.f]",
    "$[?@ == $.b]",
    "$[?@ == $.g]",
    "$[?@ == $.d]",
    "$[?@ > $.f]",
    "$[?@ >= $.d]",
    "$[?@ <= $.d]",
    "$.x[?@.a[1].b == 2]",
    "$.x[?@.a[0] == 1]",
    "$.x..b",
    "$..a",
    "$.v[?@.p == 1]",
    "$.v[?@.p == 1.0]",
    "$.v[?@.p == -0]",
    "$.v[?@.p == 0]",
    "$.v[?@.p < 1]",
    "$.v[?@.p > 1]",
    "$.v[?@.p <= 1e0]",
    "$.v[?@.p >= -1.5e1]",
    "$.v[?@.p == 18446744073709551615]",
    "$.v[?@.p > 'abc']",
    "$.v[?@.p < \"abd\"]",
    "$.v[?@.p == true]",
    "$.v[?@.p != false]",
    "$.v[?@.p == null]",
    "$.v[?@.p]",
    "$.v[?!@.p]",
    "$.v[?@.p == $.v[0].p]",
    "$.v[?@.p == $.v[9].p]",
    "$.v[?@.p == $.v[10].p]",
    "$.v[?@.p.q]",
    "$.v[?@.p[0] == 1]",
    "$.v[?1 == 1]",
    "$.v[?'a' < 'b']",
    "$.v[?null == @.p]",
    "$.v[?(@.p)]",
    "$.v[?  ( @.p == 1 || @.p == 'abc' )  &&  !( @.p == 1.0 ) ]",
    "$.n[?@ == 2]",
    "$.n[?@ > 1e2]",
    "$.n[?@ < 0]",
    "$.n[?@ == 0]",
    "$.n[1:-1:3]",
    "$.v[*].p",
    "$.v[?@.*]",
    "$.v[?@..q]",
    "$.v[?$..q]",
    "$[0]",
    "$[-1]",
    "$..[?@ == 1]",
];

/// Paths serde_json_path takes and the fast path leaves to it.
const NOT_FAST: &[&str] = &[
    "$[?length(@) == 1]",
    "$[?count(@.*) == 1]",
    "$[?match(@.a, 'b')]",
    "$[?search(@.a, 'b')]",
    "$[?value(@.a) == 1]",
];

/// A node as serde_json would have it, its numbers read by the fast path's [`number`].
fn to_value(doc: &Doc, i: usize) -> JsonValue {
    let node = doc.node(i);
    match &node.value {
        Value::Null => JsonValue::Null,
        Value::Bool(b) => JsonValue::Bool(*b),
        Value::Number(text) => match number(text) {
            Number::PosInt(n) => n.into(),
            Number::NegInt(n) => n.into(),
            Number::Float(f) => serde_json::Number::from_f64(f).unwrap().into(),
        },
        Value::String(s) => JsonValue::String(s.to_string()),
        Value::Array => doc.children(i).map(|c| to_value(doc, c)).collect(),
        Value::Object => JsonValue::Object(
            doc.children(i)
                .map(|c| (doc.node(c).key.to_string(), to_value(doc, c)))
                .collect(),
        ),
    }
}

fn sorted(values: impl Iterator<Item = JsonValue>) -> Vec<String> {
    let mut texts: Vec<String> = values.map(|v| v.to_string()).collect();
    texts.sort();
    texts
}

/// The fast path's nodes equal serde_json_path's, and so do the verdicts of checks on them.
/// False when the fast path does not compile `path`.
fn same_as_slow(text: &str, path: &str) -> bool {
    let slow_doc: JsonValue = serde_json::from_str(text).unwrap();
    let slow_path = JsonPath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let Some(query) = compile(path) else {
        return false;
    };
    let doc = Doc::parse(text).unwrap_or_else(|| panic!("the fast parser refused {text}"));
    let slow_nodes = slow_path.query(&slow_doc).all();
    let fast_nodes = eval::select(&doc, &query, 0);
    assert_eq!(
        sorted(fast_nodes.iter().map(|&n| to_value(&doc, n))),
        sorted(slow_nodes.iter().map(|v| (*v).clone())),
        "nodes of {path} in {text}"
    );
    let mut wants: Vec<JsonCheckKind> = vec![
        JsonCheckKind::Exists(true),
        JsonCheckKind::Exists(false),
        JsonCheckKind::Count(0),
        JsonCheckKind::Count(1),
        JsonCheckKind::Count(slow_nodes.len() as u64),
        JsonCheckKind::Matches("^[A-Z]".into()),
        JsonCheckKind::Matches("".into()),
        JsonCheckKind::Equals("1".into()),
        JsonCheckKind::Equals("1.0".into()),
        JsonCheckKind::Equals("[1]".into()),
        JsonCheckKind::Equals(r#"{"x": 1.0}"#.into()),
    ];
    wants.extend(
        slow_nodes
            .iter()
            .take(3)
            .map(|v| JsonCheckKind::Equals(v.to_string())),
    );
    for want in wants {
        let check = CompiledJsonCheck::new(
            0,
            &JsonCheck {
                path: path.into(),
                check: want.clone(),
            },
        )
        .unwrap();
        let slow_pass = check.judge(&slow_doc).is_none();
        let fast_pass = judge(text, [check.fast()], []).is_some();
        assert_eq!(fast_pass, slow_pass, "{want:?} on {path} in {text}");
    }
    let slow_capture = match slow_nodes.as_slice() {
        [JsonValue::String(s)] => Some(s.clone()),
        _ => None,
    };
    assert_eq!(
        judge(text, [], [Some(&query)]),
        slow_capture.map(|s| vec![s]),
        "capture {path} in {text}"
    );
    true
}

#[test]
fn the_fast_path_selects_what_serde_json_path_selects_and_judges_alike() {
    for path in PATHS {
        JsonPath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(compile(path).is_some(), "the fast path compiles {path}");
        for text in DOCS {
            assert!(same_as_slow(text, path));
        }
    }
}

#[test]
fn function_extensions_are_left_to_serde_json_path() {
    for path in NOT_FAST {
        JsonPath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(compile(path).is_none(), "{path}");
    }
}

#[test]
fn a_check_without_a_fast_form_or_that_fails_leaves_the_step_to_the_slow_path() {
    let count = |path: &str, n| {
        CompiledJsonCheck::new(
            0,
            &JsonCheck {
                path: path.into(),
                check: JsonCheckKind::Count(n),
            },
        )
        .unwrap()
    };
    let (passing, failing, no_fast) = (
        count("$..author", 4),
        count("$..author", 3),
        count("$[?length(@.store) == 2]", 1),
    );
    assert_eq!(judge(STORE, [passing.fast()], []), Some(vec![]));
    assert_eq!(judge(STORE, [passing.fast(), failing.fast()], []), None);
    assert_eq!(judge(STORE, [passing.fast(), no_fast.fast()], []), None);
    assert_eq!(judge("{", [passing.fast()], []), None);
    // A capture is sure only of exactly one string.
    let author = compile("$..book[0].author").unwrap();
    let price = compile("$..book[0].price").unwrap();
    assert_eq!(
        judge(STORE, [], [Some(&author)]),
        Some(vec!["Nigel Rees".to_string()])
    );
    assert_eq!(judge(STORE, [], [Some(&author), Some(&price)]), None);
    assert_eq!(judge(STORE, [], [Some(&author), None]), None);
}

/// Inputs around RFC 8259's and serde_json's edges.
const TRICKY: &[&str] = &[
    "[1,]",
    "{\"a\":1,}",
    "[01]",
    "[-01]",
    "[1.]",
    "[.5]",
    "[1e]",
    "[1e+]",
    "[-]",
    "[+1]",
    "[1e400]",
    "[-1e400]",
    "[1e-400]",
    "[-0]",
    "[-0.0]",
    "[0e0]",
    "[18446744073709551615]",
    "[18446744073709551616]",
    "[-9223372036854775808]",
    "[-9223372036854775809]",
    "[123456789012345678901234567890e300]",
    "[1.7976931348623159e308]",
    "[\"\\ud800\"]",
    "[\"\\udc00\"]",
    "[\"\\ud800\\u0041\"]",
    "[\"\\ud83d\\ude00\"]",
    "[\"\\u00zz\"]",
    "[\"\\x\"]",
    "[\"a\tb\"]",
    "[\"a\nb\"]",
    "[\"\u{7f}\"]",
    "[\"\\/\"]",
    "[1] x",
    "[1] ",
    " \n\t\r[1]\r\n",
    "[1]]",
    "",
    "  ",
    "tru",
    "nul",
    "truex",
    "{\"a\" 1}",
    "{\"a\":}",
    "{1:1}",
    "{'a':1}",
    "[1 2]",
    "{\"a\":1,\"a\":2}",
    "{\"a\":1,\"\\u0061\":2}",
    "\u{feff}[1]",
    "[\"é\"]",
    "{\"\":0}",
    "[[[[[[[[[[]]]]]]]]]]",
];

#[test]
fn the_fast_parser_accepts_only_what_serde_json_accepts_and_reads_it_alike() {
    let mut inputs: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
    for depth in [99, 100, 101, 127, 128, 129, 200] {
        inputs.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        inputs.push(format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)));
    }
    inputs.extend(DOCS.iter().map(|s| s.to_string()));
    let mut accepted = 0;
    for text in &inputs {
        let slow = serde_json::from_str::<JsonValue>(text);
        if let Some(doc) = Doc::parse(text) {
            accepted += 1;
            let slow = slow.unwrap_or_else(|e| panic!("serde_json refuses {text:?} ({e})"));
            assert_eq!(to_value(&doc, 0), slow, "{text:?}");
        }
    }
    // The fast parser is of use: it takes the ordinary inputs.
    assert!(accepted >= 25, "accepted {accepted}");
    for text in [
        "[-0]",
        "[1e-400]",
        "[\"\\ud83d\\ude00\"]",
        "[18446744073709551616]",
    ] {
        assert!(Doc::parse(text).is_some(), "{text}");
    }
    for text in ["{\"a\":1,\"a\":2}", "[1e400]", "[\"\\ud800\"]"] {
        assert!(Doc::parse(text).is_none(), "{text}");
    }
}

#[test]
fn numbers_read_as_serde_json_reads_them() {
    let texts = [
        "0",
        "-0",
        "1",
        "-1",
        "0.1",
        "0.2",
        "0.3",
        "1.5",
        "-2.5",
        "3.50",
        "8.95",
        "22.99",
        "0.000001",
        "123.456",
        "1e2",
        "1E-2",
        "1e22",
        "1e23",
        "9007199254740993",
        "9007199254740993.0",
        "900719925474099.3",
        "1.0000000000000002",
        "0.30000000000000004",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "5e-324",
        "2.2250738585072014e-308",
        "4.9406564584124654e-324",
        "123456789012345678901234567890",
        "0.1234567890123456789",
        "1234567890.1234567890123",
    ];
    let bits = |n: Number| match n {
        Number::PosInt(u) => (0, u),
        Number::NegInt(i) => (1, i as u64),
        Number::Float(f) => (2, f.to_bits()),
    };
    for text in texts {
        let slow = Number::of_serde(&serde_json::from_str(text).unwrap());
        assert_eq!(bits(number(text)), bits(slow), "{text}");
    }
}

/// xorshift64*: seeded, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &["a", "b", "c", "price", "x y", "é", "k\\u0041"];
const NUMS: &[&str] = &[
    "0",
    "-0",
    "1",
    "1.0",
    "1e0",
    "2",
    "-1",
    "2.5",
    "10",
    "0.1",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
];
const STRS: &[&str] = &[
    "\"a\"",
    "\"b\"",
    "\"\"",
    "\"\\u00e9\"",
    "\"A1\"",
    "\"x\\ny\"",
];

fn random_doc(rng: &mut Rng, depth: usize, out: &mut String) {
    let ws = |rng: &mut Rng, out: &mut String| out.push_str([" ", "", "\n  ", ""][rng.below(4)]);
    match if depth == 0 {
        rng.below(4)
    } else {
        rng.below(7)
    } {
        0 => out.push_str(rng.pick(NUMS)),
        1 => out.push_str(rng.pick(STRS)),
        2 => out.push_str(rng.pick(&["true", "false", "null"])),
        3 => out.push_str(rng.pick(&["[]", "{}", "1"])),
        4 | 5 => {
            out.push('{');
            let mut keys: Vec<&str> = KEYS.to_vec();
            for i in 0..rng.below(5) {
                let key = keys.swap_remove(rng.below(keys.len()));
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                out.push_str(&format!("\"{key}\":"));
                ws(rng, out);
                random_doc(rng, depth - 1, out);
            }
            out.push('}');
        }
        _ => {
            out.push('[');
            for i in 0..rng.below(5) {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                random_doc(rng, depth - 1, out);
            }
            out.push(']');
        }
    }
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "price",
    "é",
    "['x y']",
    "['kA']",
    "[\"k\\u0041\"]",
];
const LITERALS: &[&str] = &[
    "1",
    "1.0",
    "-0",
    "0",
    "2.5",
    "10",
    "'a'",
    "\"b\"",
    "''",
    "true",
    "false",
    "null",
    "18446744073709551615",
    "1e1",
];

fn random_singular(rng: &mut Rng) -> String {
    let mut q = String::from(rng.pick(&["@", "@", "@", "$"]));
    for _ in 0..rng.below(3) {
        match rng.below(3) {
            0 => q.push_str(&format!("[{}]", rng.below(4) as i64 - 1)),
            _ => match rng.pick(NAMES) {
                n if n.starts_with('[') => q.push_str(n),
                n => q.push_str(&format!(".{n}")),
            },
        }
    }
    q
}

fn random_filter(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth == 0 { 3 } else { 7 }) {
        0 => {
            let op = rng.pick(&["==", "!=", "<", "<=", ">", ">="]);
            let side = |rng: &mut Rng| {
                if rng.below(2) == 0 {
                    rng.pick(LITERALS).to_string()
                } else {
                    random_singular(rng)
                }
            };
            let (l, r) = (side(rng), side(rng));
            format!("{l} {op} {r}")
        }
        1 => random_singular(rng),
        2 => format!("{}{}", rng.pick(&["@", "$"]), random_segments(rng, 0)),
        3 => format!("!{}", random_singular(rng)),
        4 => format!("({})", random_filter(rng, depth - 1)),
        5 => format!("!({})", random_filter(rng, depth - 1)),
        _ => format!(
            "{} {} {}",
            random_filter(rng, depth - 1),
            rng.pick(&["&&", "||"]),
            random_filter(rng, depth - 1)
        ),
    }
}

fn random_selector(rng: &mut Rng, depth: usize) -> String {
    let int = |rng: &mut Rng| (rng.below(7) as i64 - 3).to_string();
    match rng.below(6) {
        0 => "*".into(),
        1 => format!("'{}'", rng.pick(&["a", "b", "price", "x y", "é", "kA"])),
        2 => int(rng),
        3 => {
            let part = |rng: &mut Rng| {
                if rng.below(2) == 0 {
                    int(rng)
                } else {
                    String::new()
                }
            };
            let (a, b, c) = (part(rng), part(rng), part(rng));
            format!("{a}:{b}:{c}")
        }
        _ => format!("?{}", random_filter(rng, depth)),
    }
}

fn random_segments(rng: &mut Rng, depth: usize) -> String {
    let mut path = String::new();
    for _ in 0..1 + rng.below(3) {
        let descendant = rng.below(4) == 0;
        path.push_str(if descendant { ".." } else { "" });
        match rng.below(3) {
            0 => path.push_str(if descendant { "*" } else { ".*" }),
            1 if !descendant => {
                let name = rng.pick(&["a", "b", "price", "é"]);
                path.push_str(&format!(".{name}"));
            }
            _ => {
                let n = 1 + rng.below(2);
                let selectors: Vec<String> = (0..n).map(|_| random_selector(rng, depth)).collect();
                path.push_str(&format!("[{}]", selectors.join(", ")));
            }
        }
    }
    path
}

#[test]
fn random_documents_and_paths_agree_with_serde_json_path() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for _ in 0..300 {
        let mut text = String::new();
        random_doc(&mut rng, 4, &mut text);
        for _ in 0..8 {
            let path = format!("${}", random_segments(&mut rng, 2));
            if JsonPath::parse(&path).is_err() {
                continue;
            }
            assert!(compile(&path).is_some(), "the fast path compiles {path}");
            assert!(same_as_slow(&text, &path));
            compared += 1;
        }
    }
    assert!(compared > 1500, "compared {compared}");
}

#[test]
fn a_step_judged_by_the_fast_path_takes_the_same_captures_in_the_same_order() {
    use crate::{judge as judge_step, Capture, CaptureSource, Compiled, Expectations, StepRun};
    let capture = |name: &str, source| Capture {
        name: name.into(),
        source,
        redact: false,
    };
    let json = |path: &str| CaptureSource::Json(path.into());
    let step = |captures: Vec<Capture>, count: u64| Expectations {
        json: vec![JsonCheck {
            path: "$..book[?@.price < 10]".into(),
            check: JsonCheckKind::Count(count),
        }],
        captures,
        ..Expectations::default()
    };
    let run = StepRun {
        exit_code: Some(0),
        timed_out: false,
        timeout_ms: 1000,
        stdout: STORE,
        stderr: "err 42",
    };
    let captures = vec![
        capture("first", json("$..book[0].author")),
        capture(
            "code",
            CaptureSource::Regex {
                pattern: r"err (\d+)".into(),
                from: crate::Stream::Stderr,
            },
        ),
        capture("color", json("$.store.bicycle.color")),
    ];
    let fast = step(captures.clone(), 2);
    assert!(fast.json.iter().all(|c| compile(&c.path).is_some()));
    let j = judge_step(&Compiled::new(&fast).unwrap(), &run);
    assert!(j.passed(), "{:#?}", j.mismatches);
    let taken: Vec<(&str, &str)> = j
        .captured
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_str()))
        .collect();
    assert_eq!(
        taken,
        [("first", "Nigel Rees"), ("code", "42"), ("color", "red")]
    );
    // A number capture is not the fast path's to take: the slow path shows its JSON text.
    let mut with_number = captures;
    with_number.push(capture("price", json("$.store.bicycle.price")));
    let j = judge_step(&Compiled::new(&step(with_number, 2)).unwrap(), &run);
    assert_eq!(j.captured.last().unwrap().value, "399");
    // A failing check is reported by the slow path, with the nodes it found.
    let j = judge_step(&Compiled::new(&step(vec![], 3)).unwrap(), &run);
    assert_eq!(j.mismatches.len(), 1);
    assert!(j.mismatches[0].actual.contains("Sayings of the Century"));
}
