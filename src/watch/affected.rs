//! Which tests a batch of changes affects (docs/reference.md §7): a pure function of the
//! changed paths and of what each test's last render read.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// The project file; a change to it re-runs everything.
pub const PROJECT_FILE: &str = "cleanroom.toml";

/// Whether a root-relative path names a test file by its name: `*.clnrm.toml`,
/// `*.clnrm.toml.tera` or `*.toml.tera`, and not a library (`_*`).
pub fn is_test_path(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    !name.starts_with('_')
        && (name.ends_with(".clnrm.toml")
            || name.ends_with(".clnrm.toml.tera")
            || name.ends_with(".toml.tera"))
}

/// What each known test read during its last render: the test file itself,
/// the libraries it imported or included (transitively), and the build-context
/// folders of its services. All paths are root-relative with `/` separators;
/// a folder stands for everything under it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependencyIndex {
    deps: BTreeMap<String, BTreeSet<String>>,
    readers: BTreeMap<String, BTreeSet<String>>,
}

impl DependencyIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what `test` read, replacing its previous record. The test file
    /// itself always counts as read.
    pub fn update(&mut self, test: &str, deps: impl IntoIterator<Item = String>) {
        self.remove(test);
        let mut set: BTreeSet<String> = deps.into_iter().map(normalize).collect();
        set.insert(normalize(test.to_string()));
        for dep in &set {
            self.readers
                .entry(dep.clone())
                .or_default()
                .insert(test.to_string());
        }
        self.deps.insert(test.to_string(), set);
    }

    /// Forgets `test` (deleted, or no longer selected).
    pub fn remove(&mut self, test: &str) {
        let Some(old) = self.deps.remove(test) else {
            return;
        };
        for dep in old {
            if let Some(readers) = self.readers.get_mut(&dep) {
                readers.remove(test);
                if readers.is_empty() {
                    self.readers.remove(&dep);
                }
            }
        }
    }

    /// Whether `test` is known.
    pub fn contains(&self, test: &str) -> bool {
        self.deps.contains_key(test)
    }

    /// The known tests.
    pub fn tests(&self) -> impl Iterator<Item = &str> {
        self.deps.keys().map(String::as_str)
    }

    /// What `test` read, if known.
    pub fn deps_of(&self, test: &str) -> Option<&BTreeSet<String>> {
        self.deps.get(test)
    }

    /// The number of known tests.
    pub fn len(&self) -> usize {
        self.deps.len()
    }

    /// Whether no test is known.
    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    /// Tests that read `changed`, a path under it (a folder changed), or a
    /// folder holding it (a build context).
    fn readers_of(&self, changed: &str, out: &mut BTreeSet<String>) {
        let mut add = |dep: &str| {
            if let Some(tests) = self.readers.get(dep) {
                out.extend(tests.iter().cloned());
            }
        };
        add(changed);
        // Ancestors of the changed path: build-context folders.
        let mut prefix = changed;
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            add(parent);
            prefix = parent;
        }
        // Descendants: a folder was removed, moved or created.
        let lower = format!("{changed}/");
        let upper = format!("{changed}0"); // '0' follows '/' in byte order
        for (_, tests) in self.readers.range::<str, _>((
            Bound::Included(lower.as_str()),
            Bound::Excluded(upper.as_str()),
        )) {
            out.extend(tests.iter().cloned());
        }
    }
}

fn normalize(path: String) -> String {
    let trimmed = path.trim_start_matches("./").trim_end_matches('/');
    if trimmed.len() == path.len() {
        path
    } else {
        trimmed.to_string()
    }
}

/// What a batch of changes asks the caller to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// `cleanroom.toml` changed: rediscover and re-run every test.
    pub all: bool,
    /// Known tests to re-run: those whose last render read a changed path.
    /// Some may have been deleted; the caller checks and drops them.
    pub tests: BTreeSet<String>,
    /// Changed paths named like tests (known or not): the caller discovers
    /// the new ones and drops the ones that no longer exist.
    pub test_files: BTreeSet<String>,
    /// A `.gitignore`/`.ignore` changed: the set of tests may have changed,
    /// so the caller should rediscover (known tests are not re-run for it).
    pub rediscover: bool,
}

impl Affected {
    /// Whether the batch asks for nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.all && !self.rediscover && self.tests.is_empty() && self.test_files.is_empty()
    }
}

/// Selects what `changed` (root-relative paths) affects, given what each
/// known test read during its last render.
pub fn affected_tests(changed: &BTreeSet<String>, deps: &DependencyIndex) -> Affected {
    let mut affected = Affected::default();
    for path in changed {
        let path = normalize(path.clone());
        if path == PROJECT_FILE {
            affected.all = true;
            affected.rediscover = true;
        }
        let name = path.rsplit('/').next().unwrap_or(&path);
        if name == ".gitignore" || name == ".ignore" {
            affected.rediscover = true;
        }
        if is_test_path(&path) {
            affected.test_files.insert(path.clone());
        }
        deps.readers_of(&path, &mut affected.tests);
    }
    if affected.all {
        affected.tests.extend(deps.deps.keys().cloned());
    }
    affected
}

/// Whether a change of `path` can concern any test: a test file (known or new), the
/// project file, an ignore file, or something a known test's render or plan read
/// (a library, a build context, a volume). The watcher drops events on any other
/// path before they reach the trigger, so they never delay or start a run.
pub fn is_relevant(path: &str, deps: &DependencyIndex) -> bool {
    !affected_tests(&BTreeSet::from([path.to_string()]), deps).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn deps(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Three tests: two import `lib/_macros.tera` (one through
    /// `lib/_http.tera`, which imports it), one has a service built from
    /// `images/web`.
    fn index() -> DependencyIndex {
        let mut idx = DependencyIndex::new();
        idx.update(
            "tests/a.clnrm.toml.tera",
            deps(&["tests/a.clnrm.toml.tera", "lib/_macros.tera"]),
        );
        idx.update(
            "tests/b.toml.tera",
            deps(&["lib/_http.tera", "lib/_macros.tera"]),
        );
        idx.update("tests/c.clnrm.toml", deps(&["images/web/"]));
        idx.update("d.clnrm.toml", deps(&[]));
        idx
    }

    #[test]
    fn a_test_file_change_selects_that_test() {
        let a = affected_tests(&set(&["d.clnrm.toml"]), &index());
        assert_eq!(a.tests, set(&["d.clnrm.toml"]));
        assert_eq!(a.test_files, set(&["d.clnrm.toml"]));
        assert!(!a.all);
    }

    #[test]
    fn a_macro_library_change_selects_exactly_its_readers() {
        let idx = index();
        let a = affected_tests(&set(&["lib/_macros.tera"]), &idx);
        assert_eq!(
            a.tests,
            set(&["tests/a.clnrm.toml.tera", "tests/b.toml.tera"])
        );
        assert!(a.test_files.is_empty(), "a library is not a test");
        let b = affected_tests(&set(&["lib/_http.tera"]), &idx);
        assert_eq!(b.tests, set(&["tests/b.toml.tera"]));
    }

    #[test]
    fn a_build_context_change_selects_the_tests_whose_services_use_it() {
        let idx = index();
        let a = affected_tests(&set(&["images/web/Dockerfile"]), &idx);
        assert_eq!(a.tests, set(&["tests/c.clnrm.toml"]));
        let deep = affected_tests(&set(&["images/web/static/x/index.html"]), &idx);
        assert_eq!(deep.tests, set(&["tests/c.clnrm.toml"]));
        let sibling = affected_tests(&set(&["images/webapp/Dockerfile"]), &idx);
        assert!(sibling.is_empty(), "{sibling:?}");
    }

    #[test]
    fn a_changed_folder_selects_the_tests_under_it() {
        let a = affected_tests(&set(&["tests"]), &index());
        assert_eq!(
            a.tests,
            set(&[
                "tests/a.clnrm.toml.tera",
                "tests/b.toml.tera",
                "tests/c.clnrm.toml"
            ])
        );
        let lib = affected_tests(&set(&["lib"]), &index());
        assert_eq!(
            lib.tests,
            set(&["tests/a.clnrm.toml.tera", "tests/b.toml.tera"])
        );
    }

    #[test]
    fn the_project_file_selects_everything() {
        let a = affected_tests(&set(&["cleanroom.toml"]), &index());
        assert!(a.all);
        assert_eq!(a.tests.len(), 4);
        let nested = affected_tests(&set(&["sub/cleanroom.toml"]), &index());
        assert!(!nested.all);
    }

    #[test]
    fn an_unrelated_file_selects_nothing() {
        let a = affected_tests(
            &set(&["README.md", "lib/_other.tera", "Cargo.toml"]),
            &index(),
        );
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn new_test_files_are_candidates_and_libraries_are_not() {
        let a = affected_tests(
            &set(&[
                "new/x.clnrm.toml",
                "y.toml.tera",
                "_lib.toml.tera",
                "z.toml",
            ]),
            &index(),
        );
        assert!(a.tests.is_empty());
        assert_eq!(a.test_files, set(&["new/x.clnrm.toml", "y.toml.tera"]));
    }

    #[test]
    fn ignore_file_changes_ask_for_rediscovery() {
        let a = affected_tests(&set(&["sub/.gitignore"]), &index());
        assert!(a.rediscover && !a.all && a.tests.is_empty());
    }

    #[test]
    fn update_replaces_and_remove_forgets() {
        let mut idx = index();
        idx.update("tests/b.toml.tera", deps(&["lib/_http.tera"]));
        let a = affected_tests(&set(&["lib/_macros.tera"]), &idx);
        assert_eq!(a.tests, set(&["tests/a.clnrm.toml.tera"]));
        idx.remove("tests/a.clnrm.toml.tera");
        assert!(affected_tests(&set(&["lib/_macros.tera"]), &idx)
            .tests
            .is_empty());
        assert!(!idx.contains("tests/a.clnrm.toml.tera"));
        assert_eq!(idx.len(), 3);
        assert!(idx
            .deps_of("tests/b.toml.tera")
            .unwrap()
            .contains("tests/b.toml.tera"));
        idx.remove("unknown");
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn only_paths_a_test_depends_on_are_relevant() {
        let idx = index();
        for path in [
            "lib/_macros.tera",
            "images/web/static/a.css",
            "images",
            "new.clnrm.toml",
            "cleanroom.toml",
            "sub/.gitignore",
            "tests",
        ] {
            assert!(is_relevant(path, &idx), "{path}");
        }
        for path in [
            "out.json",
            "notes.txt",
            "lib/_other.tera",
            "images/webapp/x",
        ] {
            assert!(!is_relevant(path, &idx), "{path}");
        }
    }

    #[test]
    fn test_names() {
        assert!(is_test_path("a.clnrm.toml"));
        assert!(is_test_path("x/a.clnrm.toml.tera"));
        assert!(is_test_path("x/a.toml.tera"));
        assert!(!is_test_path("x/_a.toml.tera"));
        assert!(!is_test_path("Cargo.toml"));
        assert!(!is_test_path("_x/a.toml"));
        assert!(is_test_path("_x/a.clnrm.toml"), "only the file name counts");
    }
}
