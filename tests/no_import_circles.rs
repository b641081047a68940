//! No file of `src/` or `stages/*/src` imports a file that imports it back,
//! directly or through a longer loop (ARCHITECTURE.md, "Layers"): a reader can
//! then tell for every pair of files which one stands on the other.
//!
//! An import is a `use crate::…`, `use super::…`, `use self::…` (or a path
//! through a child module), or such a path written inline (`crate::a::f()`).
//! It is resolved to the file that defines the name, following `use`
//! bindings on the way (a `pub use` in `mod.rs` hands a name on from the file
//! that defines it). Not imports: `mod foo;` (a declaration), and the `pub use`
//! lines of a `lib.rs`, `main.rs` or `mod.rs`, which are the module's face.
//! A face stands above the files of its own folder, as Rust's module tree
//! has it: what it takes from them is not counted, what they take from it
//! is. Doc comments are not read. Loops are found as strongly connected
//! components (Tarjan).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Circles whose files other work is removing at the same time; each entry is
/// exactly one circle's files. Nothing else may stand here.
const BEING_REMOVED: [&[&str]; 1] = [
    // The watcher and the tree of watched folders.
    &["src/watch/tree.rs", "src/watch/watcher.rs"],
];

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crate_roots = vec![root.join("src/lib.rs"), root.join("src/main.rs")];
    let mut stages: Vec<PathBuf> = fs::read_dir(root.join("stages"))
        .expect("stages/ is readable")
        .map(|e| e.expect("a stages/ entry").path().join("src/lib.rs"))
        .filter(|p| p.is_file())
        .collect();
    stages.sort();
    crate_roots.extend(stages);
    let graph = Graph::of_crates(root, &crate_roots);
    assert!(
        graph.files.len() > 100,
        "the scan found only {} files: it does not read the crates",
        graph.files.len()
    );
    let circles: Vec<Vec<String>> = graph
        .circles()
        .into_iter()
        .filter(|files| {
            !BEING_REMOVED
                .iter()
                .any(|allowed| allowed.iter().copied().eq(files.iter().map(String::as_str)))
        })
        .collect();
    assert!(
        circles.is_empty(),
        "files that import each other in a circle:\n{}",
        graph.describe(&circles)
    );
}

#[test]
fn a_circle_through_a_re_export_is_found_and_named() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "src/lib.rs",
        "mod a;\nmod b;\npub use b::Bee;\n",
    );
    write(dir.path(), "src/a.rs", "use crate::Bee;\npub fn ant() {}\n");
    write(
        dir.path(),
        "src/b.rs",
        "pub struct Bee;\nfn f() { crate::a::ant() }\n",
    );
    let graph = Graph::of_crates(dir.path(), &[dir.path().join("src/lib.rs")]);
    let circles = graph.circles();
    assert_eq!(
        circles,
        vec![vec!["src/a.rs".to_string(), "src/b.rs".into()]]
    );
    let told = graph.describe(&circles);
    assert!(
        told.contains("src/a.rs -> src/b.rs: crate::Bee (line 1)"),
        "{told}"
    );
    assert!(
        told.contains("src/b.rs -> src/a.rs: crate::a::ant (line 2)"),
        "{told}"
    );
}

#[test]
fn a_module_is_told_from_a_function_of_its_name_handed_on_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/lib.rs", "mod low;\nmod up;\n");
    write(
        dir.path(),
        "src/low/mod.rs",
        "mod run;\npub use run::{run, Alias};\n",
    );
    write(
        dir.path(),
        "src/low/run.rs",
        "pub type Alias = u8;\npub fn run() { crate::up::f() }\n",
    );
    write(
        dir.path(),
        "src/up.rs",
        "use crate::low::Alias;\npub fn f() {}\n",
    );
    let graph = Graph::of_crates(dir.path(), &[dir.path().join("src/lib.rs")]);
    assert_eq!(
        graph.circles(),
        vec![vec!["src/low/run.rs".to_string(), "src/up.rs".into()]]
    );
}

#[test]
fn a_longer_circle_through_super_and_a_folder_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/lib.rs", "pub mod low;\npub mod top;\n");
    write(dir.path(), "src/low/mod.rs", "mod one;\nmod two;\n");
    write(
        dir.path(),
        "src/low/one.rs",
        "use super::two::Two;\npub struct One;\n",
    );
    write(dir.path(), "src/low/two.rs", "pub struct Two;\n");
    write(dir.path(), "src/top.rs", "use crate::low::one::One;\n");
    let acyclic = Graph::of_crates(dir.path(), &[dir.path().join("src/lib.rs")]);
    assert_eq!(acyclic.circles(), Vec::<Vec<String>>::new());
    write(
        dir.path(),
        "src/low/two.rs",
        "pub struct Two;\nfn up() { let _ = crate::top::f; }\n",
    );
    write(
        dir.path(),
        "src/top.rs",
        "use crate::low::one::One;\npub fn f() {}\n",
    );
    let looped = Graph::of_crates(dir.path(), &[dir.path().join("src/lib.rs")]);
    assert_eq!(
        looped.circles(),
        vec![vec![
            "src/low/one.rs".to_string(),
            "src/low/two.rs".into(),
            "src/top.rs".into()
        ]]
    );
}

#[test]
fn declarations_the_face_tests_and_comments_are_not_imports() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "src/lib.rs",
        "mod a;\npub use a::Ant;\npub struct Root;\n",
    );
    write(
        dir.path(),
        "src/a.rs",
        "use crate::Root;\n/// Not [`crate::a`]: see crate::Root.\npub struct Ant;\n\
         #[cfg(test)]\nmod tests {\n    use super::*;\n    fn t() { let _ = \"crate::Root\"; }\n}\n",
    );
    let graph = Graph::of_crates(dir.path(), &[dir.path().join("src/lib.rs")]);
    assert_eq!(graph.circles(), Vec::<Vec<String>>::new());
    assert!(graph
        .edges
        .contains_key(&("src/a.rs".into(), "src/lib.rs".into())));
}

#[test]
fn a_face_stands_above_its_folder_but_not_its_siblings() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/lib.rs", "mod shop;\nmod till;\n");
    write(
        dir.path(),
        "src/shop/mod.rs",
        "mod shelf;\npub struct Price;\nfn f() { shelf::stock() }\n",
    );
    write(
        dir.path(),
        "src/shop/shelf.rs",
        "use super::Price;\npub fn stock() {}\n",
    );
    write(dir.path(), "src/till.rs", "pub fn pay() {}\n");
    let graph = Graph::of_crates(dir.path(), &[dir.path().join("src/lib.rs")]);
    assert_eq!(graph.circles(), Vec::<Vec<String>>::new());
    write(
        dir.path(),
        "src/shop/mod.rs",
        "mod shelf;\npub struct Price;\nfn f() { shelf::stock(); crate::till::pay() }\n",
    );
    write(
        dir.path(),
        "src/till.rs",
        "use crate::shop::Price;\npub fn pay() {}\n",
    );
    let graph = Graph::of_crates(dir.path(), &[dir.path().join("src/lib.rs")]);
    assert_eq!(
        graph.circles(),
        vec![vec!["src/shop/mod.rs".to_string(), "src/till.rs".into()]]
    );
}

fn write(dir: &Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

// ---- the scan ----

/// A module: the file it is written in, its child modules, and the names bound in it.
#[derive(Default)]
struct Module {
    file: String,
    children: BTreeSet<String>,
    /// Names bound by `use`: name -> (the path, the module the path is read in).
    uses: HashMap<String, (Vec<String>, Vec<String>)>,
    /// Modules glob-imported by `use …::*`.
    globs: Vec<(Vec<String>, Vec<String>)>,
}

/// A path to resolve, as written in a file.
struct Mention {
    file: String,
    module: Vec<String>,
    path: Vec<String>,
    line: usize,
}

#[derive(Default)]
struct Graph {
    files: BTreeSet<String>,
    /// (from, to) -> what `from` names of `to`, with lines.
    edges: BTreeMap<(String, String), Vec<String>>,
}

impl Graph {
    fn of_crates(root: &Path, crate_roots: &[PathBuf]) -> Graph {
        let mut graph = Graph::default();
        for crate_root in crate_roots.iter().filter(|p| p.is_file()) {
            let mut scan = CrateScan::default();
            scan.read(root, crate_root, Vec::new());
            for mention in &scan.mentions {
                let mut via = Vec::new();
                let Some(target) = scan.resolve(&mention.module, &mention.path, 0, &mut via) else {
                    continue;
                };
                via.push(target);
                for target in via {
                    if target != mention.file && !scan.stands_above(&mention.file, &target) {
                        graph
                            .edges
                            .entry((mention.file.clone(), target))
                            .or_default()
                            .push(format!(
                                "{} (line {})",
                                mention.path.join("::"),
                                mention.line
                            ));
                    }
                }
            }
            graph
                .files
                .extend(scan.modules.values().map(|m| m.file.clone()));
        }
        graph
    }

    /// Every set of files that reach each other, sorted.
    fn circles(&self) -> Vec<Vec<String>> {
        let names: Vec<&String> = self.files.iter().collect();
        let index: HashMap<&String, usize> =
            names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut next = vec![Vec::new(); names.len()];
        for (from, to) in self.edges.keys() {
            if let (Some(&a), Some(&b)) = (index.get(from), index.get(to)) {
                next[a].push(b);
            }
        }
        let mut circles: Vec<Vec<String>> = tarjan(&next)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let mut files: Vec<String> = component.iter().map(|&i| names[i].clone()).collect();
                files.sort();
                files
            })
            .collect();
        circles.sort();
        circles
    }

    fn describe(&self, circles: &[Vec<String>]) -> String {
        let mut text = String::new();
        for files in circles {
            text.push_str(&format!("circle: {}\n", files.join(", ")));
            for ((from, to), names) in &self.edges {
                if files.contains(from) && files.contains(to) {
                    text.push_str(&format!("  {from} -> {to}: {}\n", names.join(", ")));
                }
            }
        }
        text
    }
}

/// Strongly connected components of a graph given as successor lists.
fn tarjan(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'g> {
        next: &'g [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        components: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for w in s.next[v].clone() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let n = next.len();
    let mut s = State {
        next,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        components: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.components
}

#[derive(Default)]
struct CrateScan {
    modules: BTreeMap<Vec<String>, Module>,
    /// Names each file defines (`fn`, `struct`, `enum`, …).
    defines: HashMap<String, BTreeSet<String>>,
    mentions: Vec<Mention>,
    /// The files that are a module's face (`lib.rs`, `main.rs`, `mod.rs`).
    faces: BTreeSet<String>,
}

const DEFINING: [&str; 9] = [
    "fn",
    "struct",
    "enum",
    "trait",
    "type",
    "const",
    "static",
    "union",
    "macro_rules",
];

impl CrateScan {
    /// Whether `file` is a face (`lib.rs`, `main.rs`, `mod.rs`) and `other` is in its folder.
    fn stands_above(&self, file: &str, other: &str) -> bool {
        self.faces.contains(file)
            && file
                .rsplit_once('/')
                .is_some_and(|(folder, _)| other.starts_with(&format!("{folder}/")))
    }

    /// Reads the file of module `path` and, through its `mod` lines, its children.
    fn read(&mut self, root: &Path, file: &Path, path: Vec<String>) {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        let tokens = tokens(&text);
        let is_face = matches!(
            file.file_name().and_then(|n| n.to_str()),
            Some("lib.rs" | "main.rs" | "mod.rs")
        );
        // Where `mod x;` finds x.rs: beside a lib.rs/main.rs/mod.rs, else in a folder named after the file.
        let base = if is_face {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        self.modules.entry(path.clone()).or_default().file = name.clone();
        if is_face {
            self.faces.insert(name.clone());
        }
        let defines = self.defines.entry(name.clone()).or_default();
        for pair in tokens.windows(2) {
            if DEFINING.contains(&pair[0].text.as_str()) && is_ident(&pair[1].text) {
                defines.insert(pair[1].text.clone());
            }
        }
        // Inline modules open here: (their path, the brace depth they close at).
        let mut inline: Vec<(Vec<String>, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < tokens.len() {
            let here = inline.last().map_or(&path, |(p, _)| p).clone();
            let t = tokens[i].text.as_str();
            match t {
                "{" => depth += 1,
                "}" => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                }
                "mod" if tokens.get(i + 1).is_some_and(|n| is_ident(&n.text)) => {
                    let child = tokens[i + 1].text.clone();
                    let mut child_path = here.clone();
                    child_path.push(child.clone());
                    self.modules
                        .entry(here.clone())
                        .or_default()
                        .children
                        .insert(child.clone());
                    match tokens.get(i + 2).map(|t| t.text.as_str()) {
                        Some(";") => {
                            let mut dir = base.clone();
                            for segment in &here[path.len()..] {
                                dir.push(segment);
                            }
                            let flat = dir.join(format!("{child}.rs"));
                            let folder = dir.join(&child).join("mod.rs");
                            let found = if flat.is_file() { flat } else { folder };
                            if found.is_file() {
                                self.read(root, &found, child_path);
                            }
                            i += 3;
                            continue;
                        }
                        Some("{") => {
                            self.modules.entry(child_path.clone()).or_default().file = name.clone();
                            inline.push((child_path, depth));
                            depth += 1;
                            i += 3;
                            continue;
                        }
                        _ => {}
                    }
                }
                "use" => {
                    let face = is_face && inline.is_empty() && is_pub(&tokens, i);
                    let end = (i..tokens.len())
                        .find(|&j| tokens[j].text == ";")
                        .unwrap_or(tokens.len());
                    let mut bound = Vec::new();
                    use_tree(&tokens[i + 1..end], Vec::new(), &mut bound);
                    let module = self.modules.entry(here.clone()).or_default();
                    for (full, alias) in bound {
                        match alias {
                            Some(alias) => {
                                module.uses.insert(alias, (full.clone(), here.clone()));
                            }
                            None => module.globs.push((full.clone(), here.clone())),
                        }
                        if !face {
                            self.mentions.push(Mention {
                                file: name.clone(),
                                module: here.clone(),
                                path: full,
                                line: tokens[i].line,
                            });
                        }
                    }
                    i = end + 1;
                    continue;
                }
                _ if is_ident(t)
                    && tokens.get(i + 1).is_some_and(|n| n.text == "::")
                    && (i == 0 || !matches!(tokens[i - 1].text.as_str(), "::" | "$")) =>
                {
                    let mut full = vec![t.to_string()];
                    let mut j = i + 1;
                    while tokens.get(j).is_some_and(|n| n.text == "::")
                        && tokens.get(j + 1).is_some_and(|n| is_ident(&n.text))
                    {
                        full.push(tokens[j + 1].text.clone());
                        j += 2;
                    }
                    self.mentions.push(Mention {
                        file: name.clone(),
                        module: here,
                        path: full,
                        line: tokens[i].line,
                    });
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// The file that defines what `path`, read in module `module`, names; `None`: outside the crate.
    /// A name handed on by a `use` in a file that is no module's face is also
    /// taken from that file: it is added to `via`.
    fn resolve(
        &self,
        module: &[String],
        path: &[String],
        hops: usize,
        via: &mut Vec<String>,
    ) -> Option<String> {
        if hops > 16 || path.is_empty() {
            return None;
        }
        let mut at: Vec<String> = module.to_vec();
        let mut rest = path;
        match path[0].as_str() {
            "crate" => {
                at.clear();
                rest = &path[1..];
            }
            "self" => rest = &path[1..],
            "super" => {
                while rest.first().is_some_and(|s| s == "super") {
                    at.pop();
                    rest = &rest[1..];
                }
            }
            first => {
                let scope = self.modules.get(module)?;
                // A path goes on through a module: a child module wins over a `use`
                // of a function of the same name (`pub use execute::execute`).
                let bound = scope
                    .uses
                    .get(first)
                    .filter(|_| !scope.children.contains(first));
                if let Some((bound, read_in)) = bound {
                    if !(bound.len() == 1 && bound[0] == first) {
                        let mut joined = bound.clone();
                        joined.extend(path[1..].iter().cloned());
                        return self.resolve(read_in, &joined, hops + 1, via);
                    }
                }
                if !scope.children.contains(first) {
                    return None;
                }
            }
        }
        while let Some(next) = rest.first() {
            let here = self.modules.get(&at)?;
            if !here.children.contains(next) {
                break;
            }
            at.push(next.clone());
            rest = &rest[1..];
        }
        let here = self.modules.get(&at)?;
        let Some(item) = rest.first() else {
            return Some(here.file.clone());
        };
        if let Some((bound, read_in)) = here.uses.get(item) {
            if !self.faces.contains(&here.file) {
                via.push(here.file.clone());
            }
            return self.resolve(read_in, bound, hops + 1, via);
        }
        if self
            .defines
            .get(&here.file)
            .is_some_and(|d| d.contains(item))
        {
            return Some(here.file.clone());
        }
        for (glob, read_in) in &here.globs {
            let mut joined = glob.clone();
            joined.push(item.clone());
            if let Some(file) = self.resolve(read_in, &joined, hops + 1, &mut Vec::new()) {
                if self.defines.get(&file).is_some_and(|d| d.contains(item)) {
                    return Some(file);
                }
            }
        }
        Some(here.file.clone())
    }
}

/// Whether the `use` at `i` is preceded by `pub` or `pub(…)`.
fn is_pub(tokens: &[Token], i: usize) -> bool {
    match i.checked_sub(1).map(|j| tokens[j].text.as_str()) {
        Some("pub") => true,
        Some(")") => (0..i)
            .rev()
            .find(|&j| tokens[j].text == "(")
            .and_then(|j| j.checked_sub(1))
            .is_some_and(|j| tokens[j].text == "pub"),
        _ => false,
    }
}

/// The paths a `use` tree binds: (path, Some(name bound)) or (module path, None) for `*`.
fn use_tree(tokens: &[Token], prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut path = prefix;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].text.as_str();
        match t {
            "::" => {}
            "*" => {
                out.push((path.clone(), None));
                return;
            }
            "{" => {
                let mut depth = 0;
                let mut start = i + 1;
                for j in i..tokens.len() {
                    match tokens[j].text.as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                use_tree(&tokens[start..j], path.clone(), out);
                                return;
                            }
                        }
                        "," if depth == 1 => {
                            use_tree(&tokens[start..j], path.clone(), out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            "self" if !path.is_empty() => {}
            "as" => {
                if let Some(alias) = tokens.get(i + 1) {
                    out.push((path, Some(alias.text.clone())));
                }
                return;
            }
            _ if is_ident(t) => path.push(t.to_string()),
            _ => {}
        }
        i += 1;
    }
    if let Some(last) = path.last().cloned() {
        out.push((path, Some(last)));
    }
}

struct Token {
    text: String,
    line: usize,
}

fn is_ident(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation, with comments, strings and
/// character literals left out.
fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let count_lines = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let (start, mut depth) = (i, 0);
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i, &mut line);
        } else if c == '"' || ((c == 'b' || c == 'r') && raw_or_byte_string(&chars, i)) {
            let start = i;
            i = string_end(&chars, i);
            count_lines(start, i, &mut line);
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'), or else a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && next == Some(':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// Whether a `b"…"`, `r"…"`, `r#"…"#` or `br"…"` starts at `i`.
fn raw_or_byte_string(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
    }
    if chars.get(j) == Some(&'r') {
        j += 1;
        while chars.get(j) == Some(&'#') {
            j += 1;
        }
    }
    j > i && chars.get(j) == Some(&'"')
}

/// The index just past the string literal starting at `i`.
fn string_end(chars: &[char], mut i: usize) -> usize {
    if chars[i] == 'b' {
        i += 1;
    }
    if chars[i] == 'r' {
        i += 1;
        let mut hashes = 0;
        while chars[i] == '#' {
            hashes += 1;
            i += 1;
        }
        i += 1;
        while i < chars.len() {
            if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                return i + 1 + hashes;
            }
            i += 1;
        }
        return i;
    }
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}
