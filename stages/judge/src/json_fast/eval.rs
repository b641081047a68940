//! Evaluating a compiled path over a [`Doc`]: the nodes it selects (arena indices, in no
//! particular order), with serde_json_path_core's semantics, quirks included (its filter.rs
//! is the reference, not the RFC's prose).

use super::doc::{number, Doc, Value};
use super::path::{Comparable, Literal, Op, Or, Query, Selector, Test};

/// The nodes `query` selects, `current` being `@`'s node.
pub(crate) fn select(doc: &Doc, query: &Query, current: usize) -> Vec<usize> {
    let mut nodes = vec![if query.absolute { 0 } else { current }];
    let mut next = Vec::new();
    for segment in &query.segments {
        next.clear();
        for &node in &nodes {
            if segment.descendant {
                // In document order a node's subtree is the range up to its `end`.
                for inner in node..doc.node(node).end as usize {
                    apply(doc, &segment.selectors, inner, &mut next);
                }
            } else {
                apply(doc, &segment.selectors, node, &mut next);
            }
        }
        std::mem::swap(&mut nodes, &mut next);
    }
    nodes
}

fn apply(doc: &Doc, selectors: &[Selector], node: usize, out: &mut Vec<usize>) {
    for selector in selectors {
        match selector {
            Selector::Name(name) => out.extend(doc.member(node, name)),
            Selector::Wildcard => out.extend(doc.children(node)),
            Selector::Index(index) => {
                let position = if *index >= 0 {
                    usize::try_from(*index).ok()
                } else {
                    let len = doc.node(node).len as usize;
                    usize::try_from(index.unsigned_abs())
                        .ok()
                        .and_then(|back| len.checked_sub(back))
                };
                out.extend(position.and_then(|i| doc.element(node, i)));
            }
            Selector::Slice { start, end, step } => {
                if matches!(doc.node(node).value, Value::Array) {
                    let elements: Vec<usize> = doc.children(node).collect();
                    for i in slice_positions(elements.len() as i64, *start, *end, *step) {
                        out.push(elements[i]);
                    }
                }
            }
            Selector::Filter(expr) => out.extend(
                doc.children(node)
                    .filter(|&child| test_or(doc, expr, child)),
            ),
        }
    }
}

/// serde_json_path_core's slice bounds (slice.rs), positions in selection order.
fn slice_positions(
    len: i64,
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
) -> Vec<usize> {
    let normalize = |i: i64| if i >= 0 { i } else { len + i };
    let step = step.unwrap_or(1);
    let mut positions = Vec::new();
    if step > 0 {
        let lower = normalize(start.unwrap_or(0)).max(0).min(len);
        let upper = normalize(end.unwrap_or(len)).max(0).min(len);
        let mut i = lower;
        while i < upper {
            positions.push(i as usize);
            i += step;
        }
    } else if step < 0 {
        let start = normalize(start.unwrap_or(len - 1)).max(-1);
        let end = normalize(end.unwrap_or(-len - 1)).max(-1);
        let last = len - 1;
        let (lower, upper) = (end.min(last), start.min(last));
        let mut i = upper;
        while lower < i {
            if i >= 0 {
                positions.push(i as usize);
            }
            i += step;
        }
    }
    positions
}

fn test_or(doc: &Doc, expr: &Or, node: usize) -> bool {
    expr.0
        .iter()
        .any(|and| and.0.iter().all(|test| test_one(doc, test, node)))
}

fn test_one(doc: &Doc, test: &Test, node: usize) -> bool {
    match test {
        Test::Paren { negated, expr } => test_or(doc, expr, node) != *negated,
        Test::Exists { negated, query } => select(doc, query, node).is_empty() == *negated,
        Test::Compare(left, op, right) => {
            let (l, r) = (operand(doc, left, node), operand(doc, right, node));
            let same_type = l.kind(doc).is_some() && l.kind(doc) == r.kind(doc);
            match op {
                Op::Eq => equal(doc, l, r),
                Op::Ne => !equal(doc, l, r),
                Op::Lt => same_type && less(doc, l, r),
                Op::Gt => same_type && !less(doc, l, r) && !equal(doc, l, r),
                Op::Le => same_type && (less(doc, l, r) || equal(doc, l, r)),
                Op::Ge => same_type && !less(doc, l, r),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Operand<'l> {
    /// A singular query that selected nothing.
    Nothing,
    Node(usize),
    Literal(&'l Literal),
}

#[derive(PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Operand<'_> {
    fn kind(self, doc: &Doc) -> Option<Kind> {
        Some(match self {
            Operand::Nothing => return None,
            Operand::Node(n) => match doc.node(n).value {
                Value::Null => Kind::Null,
                Value::Bool(_) => Kind::Bool,
                Value::Number(_) => Kind::Number,
                Value::String(_) => Kind::String,
                Value::Array => Kind::Array,
                Value::Object => Kind::Object,
            },
            Operand::Literal(l) => match l {
                Literal::Null => Kind::Null,
                Literal::Bool(_) => Kind::Bool,
                Literal::Number(_) => Kind::Number,
                Literal::String(_) => Kind::String,
            },
        })
    }

    fn as_f64(self, doc: &Doc) -> Option<f64> {
        match self {
            Operand::Node(n) => match doc.node(n).value {
                Value::Number(text) => Some(number(text).as_f64()),
                _ => None,
            },
            Operand::Literal(Literal::Number(n)) => Some(n.as_f64()),
            _ => None,
        }
    }

    fn as_str<'d>(self, doc: &'d Doc) -> Option<&'d str>
    where
        Self: 'd,
    {
        match self {
            Operand::Node(n) => match &doc.node(n).value {
                Value::String(s) => Some(s),
                _ => None,
            },
            Operand::Literal(Literal::String(s)) => Some(s),
            _ => None,
        }
    }

    fn as_bool(self, doc: &Doc) -> Option<bool> {
        match self {
            Operand::Node(n) => match doc.node(n).value {
                Value::Bool(b) => Some(b),
                _ => None,
            },
            Operand::Literal(Literal::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

fn operand<'l>(doc: &Doc, comparable: &'l Comparable, current: usize) -> Operand<'l> {
    match comparable {
        Comparable::Literal(l) => Operand::Literal(l),
        Comparable::Singular(query) => match singular(doc, query, current) {
            Some(n) => Operand::Node(n),
            None => Operand::Nothing,
        },
    }
}

/// A singular query's node. A negative index selects nothing here, as in
/// serde_json_path_core's `SingularQuery::eval_query`.
fn singular(doc: &Doc, query: &Query, current: usize) -> Option<usize> {
    let mut node = if query.absolute { 0 } else { current };
    for segment in &query.segments {
        node = match segment.selectors.first()? {
            Selector::Name(name) => doc.member(node, name)?,
            Selector::Index(index) => doc.element(node, usize::try_from(*index).ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// filter.rs's `check_equal_to`: numbers by f64 value, anything else as serde_json's
/// `Value` equality (so `[1]` and `[1.0]` differ), Nothing equal only to Nothing.
fn equal(doc: &Doc, l: Operand, r: Operand) -> bool {
    let (Some(kl), Some(kr)) = (l.kind(doc), r.kind(doc)) else {
        return matches!((l, r), (Operand::Nothing, Operand::Nothing));
    };
    if kl != kr {
        return false;
    }
    match kl {
        Kind::Null => true,
        Kind::Bool => l.as_bool(doc) == r.as_bool(doc),
        Kind::Number => l.as_f64(doc) == r.as_f64(doc),
        Kind::String => l.as_str(doc) == r.as_str(doc),
        Kind::Array | Kind::Object => match (l, r) {
            (Operand::Node(a), Operand::Node(b)) => value_eq(doc, a, b),
            _ => false,
        },
    }
}

/// serde_json's `Value` equality between two nodes: numbers must be the same variant.
fn value_eq(doc: &Doc, a: usize, b: usize) -> bool {
    let (na, nb) = (doc.node(a), doc.node(b));
    match (&na.value, &nb.value) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => number(x) == number(y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array, Value::Array) => {
            na.len == nb.len
                && doc
                    .children(a)
                    .zip(doc.children(b))
                    .all(|(x, y)| value_eq(doc, x, y))
        }
        (Value::Object, Value::Object) => {
            na.len == nb.len
                && doc.children(a).all(|x| {
                    doc.member(b, &doc.node(x).key)
                        .is_some_and(|y| value_eq(doc, x, y))
                })
        }
        _ => false,
    }
}

/// filter.rs's `check_less_than`: numbers by f64, strings by code point, nothing else.
fn less(doc: &Doc, l: Operand, r: Operand) -> bool {
    if let (Some(x), Some(y)) = (l.as_f64(doc), r.as_f64(doc)) {
        return x < y;
    }
    if let (Some(x), Some(y)) = (l.as_str(doc), r.as_str(doc)) {
        return x < y;
    }
    false
}
