//! Where things are in a test file: the line of each step and of an invalid test's
//! first error, so that reports (GitHub annotations, TAP, JSON) can point at them.
//! [`SourceLines`] fills the `line` fields of events. Not a parser: it finds lines
//! in text the parse stage already read, and gives up (no line) rather than guess.

use std::collections::HashMap;
use std::ops::Range;

use toml_edit::{ImDocument, InlineTable, Item, Table, Value};

use super::Event;

/// A place in a parsed document while following a key path.
enum Node<'a> {
    Table(&'a Table),
    Inline(&'a InlineTable),
    Other(Option<Range<usize>>),
}

impl<'a> Node<'a> {
    fn of_item(item: &'a Item) -> Node<'a> {
        match item {
            Item::Table(table) => Node::Table(table),
            Item::Value(value) => Node::of_value(value),
            other => Node::Other(other.span()),
        }
    }

    fn of_value(value: &'a Value) -> Node<'a> {
        match value {
            Value::InlineTable(table) => Node::Inline(table),
            other => Node::Other(other.span()),
        }
    }

    /// The entry `key`, then element `index` of it when given.
    fn child(&self, key: &str, index: Option<usize>) -> Option<Node<'a>> {
        let (item, value) = match self {
            Node::Table(table) => (Some(table.get(key)?), None),
            Node::Inline(table) => (None, Some(table.get(key)?)),
            Node::Other(_) => return None,
        };
        let value = match (item, value) {
            (Some(Item::ArrayOfTables(array)), None) => {
                return Some(Node::Table(array.get(index?)?));
            }
            (Some(Item::Value(value)), None) | (None, Some(value)) => value,
            (Some(item), None) => return index.is_none().then(|| Node::of_item(item)),
            (None, None) | (Some(_), Some(_)) => return None,
        };
        match (value, index) {
            (Value::Array(array), Some(i)) => Some(Node::of_value(array.get(i)?)),
            (value, None) => Some(Node::of_value(value)),
            (_, Some(_)) => None,
        }
    }

    fn span(&self) -> Option<Range<usize>> {
        match self {
            Node::Table(table) => table.span(),
            Node::Inline(table) => table.span(),
            Node::Other(span) => span.clone(),
        }
    }
}

/// The 1-based line where the table at `key_path` starts (`steps[2]`,
/// `scenario[0].steps[1]`: the parse stage's step paths) in TOML `text`.
pub fn step_line(text: &str, key_path: &str) -> Option<usize> {
    let document = ImDocument::parse(text).ok()?;
    let mut node = Node::Table(document.as_table());
    for segment in key_path.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((key, rest)) => (key, Some(rest.strip_suffix(']')?.parse().ok()?)),
            None => (segment, None),
        };
        node = node.child(key.trim_matches('"'), index)?;
    }
    Some(line_of(text, node.span()?.start))
}

/// The 1-based line of a step named `step_name` in a template's source: the line
/// that assigns it as a literal (`name = "greet"`). None when the name is computed
/// (`"greet_" ~ who`) or given more than once: then no line is better than a wrong one.
pub fn template_step_line(source: &str, step_name: &str) -> Option<usize> {
    // Scenario steps are named `scenario/step`; the file says `step`.
    let own_name = step_name.rsplit('/').next().unwrap_or(step_name);
    let mut found = source.lines().enumerate().filter(|(_, line)| {
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        let value = value.trim().trim_end_matches(',').trim();
        key.trim() == "name"
            && (value == format!("\"{own_name}\"") || value == format!("'{own_name}'"))
    });
    match (found.next(), found.next()) {
        (Some((index, _)), None) => Some(index + 1),
        _ => None,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Lines of the steps and problems of a run's tests, by test identity: filled into
/// the `line` fields of the runner's events before any reader sees them.
#[derive(Debug, Default, Clone)]
pub struct SourceLines {
    steps: HashMap<(String, String), usize>,
    problems: HashMap<String, usize>,
}

impl SourceLines {
    pub fn add_step(&mut self, test: &str, step: &str, line: usize) {
        self.steps
            .insert((test.to_string(), step.to_string()), line);
    }

    /// The line of an invalid test's first error.
    pub fn add_problem(&mut self, test: &str, line: usize) {
        self.problems.insert(test.to_string(), line);
    }

    fn step(&self, test: &str, step: &str) -> Option<usize> {
        self.steps
            .get(&(test.to_string(), step.to_string()))
            .copied()
    }

    /// Sets the `line` of a step's event, and of a test's that failed or errored.
    pub fn fill(&self, event: &mut Event) {
        match event {
            Event::StepFinished {
                test, step, line, ..
            } => *line = line.or(self.step(test, step)),
            Event::TestFinished(finished) => {
                let known = match &finished.failed_step {
                    Some(step) => self.step(&finished.test, step),
                    None => self.problems.get(&finished.test).copied(),
                };
                finished.line = finished.line.or(known);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: &str = r#"# a comment
[meta]
name = "t"

[[steps]]
name = "first"
command = ["true"]

[[steps]]
name = "second"
command = ["false"]

[[scenario]]
name = "s"
run = "true"
steps = [
  { name = "inline", run = "true" },
  { name = "inline2", run = "true" },
]
"#;

    #[test]
    fn steps_are_found_by_their_key_path_whatever_their_form() {
        assert_eq!(step_line(TEST, "steps[0]"), Some(5));
        assert_eq!(step_line(TEST, "steps[1]"), Some(9));
        assert_eq!(step_line(TEST, "scenario[0]"), Some(13));
        assert_eq!(step_line(TEST, "scenario[0].steps[1]"), Some(18));
        assert_eq!(step_line(TEST, "steps[7]"), None);
        assert_eq!(step_line("not = [toml", "steps[0]"), None);
    }

    #[test]
    fn a_template_step_has_a_line_only_when_its_name_is_literal_and_unique() {
        let template = "[[steps]]\nname = \"greet\"\n{% for x in xs %}\nname = \"s_{{ x }}\"\n{% endfor %}\n{{ m::step(name='dup') }}\nname = 'dup'\nname = 'dup'\n";
        assert_eq!(template_step_line(template, "greet"), Some(2));
        assert_eq!(template_step_line(template, "scenario/greet"), Some(2));
        assert_eq!(template_step_line(template, "s_a"), None);
        assert_eq!(template_step_line(template, "dup"), None);
    }
}
