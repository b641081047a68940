//! Which paths may trigger a run (docs/reference.md §7): never editor temp files, never
//! anything under `.git/`, `target/` or `.clnrm/`, never what the project's
//! `.gitignore`/`.ignore` files exclude.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// Folders whose contents never trigger a run, at any depth.
pub const IGNORED_DIRS: [&str; 3] = [".git", "target", ".clnrm"];

/// Whether a file name is an editor's temporary, swap or backup file: vim's
/// `*.swp`, `*.swx`, `*~` and its `4913` write probe, emacs' `.#*` lock and
/// `#*#` autosave, `*.tmp`, and JetBrains' `*___jb_tmp___`/`*___jb_old___`.
pub fn is_editor_temp(name: &str) -> bool {
    name == "4913"
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name.ends_with("___jb_tmp___")
        || name.ends_with("___jb_old___")
}

/// Whether a file name is one of the ignore files whose change alters the rules.
pub fn is_ignore_file(name: &str) -> bool {
    name == ".gitignore" || name == ".ignore"
}

/// The ignore rules of one project, with each folder's `.gitignore`/`.ignore`
/// loaded on first use and reloaded after [`IgnoreRules::invalidate`].
///
/// Paths are root-relative and `/`-separated; `""` is the root itself.
/// Deeper ignore files take precedence over shallower ones, and within a
/// folder `.ignore` over `.gitignore`, as in ripgrep.
#[derive(Debug)]
pub struct IgnoreRules {
    root: PathBuf,
    extra_dirs: Vec<String>,
    per_dir: HashMap<String, Option<Gitignore>>,
}

impl IgnoreRules {
    /// Rules for the project at `root`; `extra_dirs` are more root-relative
    /// folders to ignore (e.g. a cache directory configured elsewhere).
    pub fn new(root: &Path, extra_dirs: Vec<String>) -> Self {
        IgnoreRules {
            root: root.to_path_buf(),
            extra_dirs: extra_dirs
                .into_iter()
                .map(|d| d.trim_matches('/').to_string())
                .filter(|d| !d.is_empty())
                .collect(),
            per_dir: HashMap::new(),
        }
    }

    /// Forgets the rules loaded for folder `rel_dir` (its ignore file changed).
    pub fn invalidate(&mut self, rel_dir: &str) {
        self.per_dir.remove(rel_dir);
    }

    /// Whether a change of `rel` must not trigger a run. `is_dir` says whether
    /// the path is a folder (gitignore patterns ending in `/` match only those).
    pub fn is_ignored(&mut self, rel: &str, is_dir: bool) -> bool {
        if rel.is_empty() {
            return false;
        }
        let components: Vec<&str> = rel.split('/').collect();
        if components.iter().any(|c| IGNORED_DIRS.contains(c)) {
            return true;
        }
        if is_editor_temp(components[components.len() - 1]) {
            return true;
        }
        if self.extra_dirs.iter().any(|d| {
            rel == d
                || rel
                    .strip_prefix(d.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        }) {
            return true;
        }
        self.gitignored(rel, &components, is_dir)
    }

    fn gitignored(&mut self, rel: &str, components: &[&str], is_dir: bool) -> bool {
        let path = self.root.join(rel);
        // Folders that hold ignore files applying to `rel`: the root and each
        // ancestor folder, deepest first.
        for depth in (0..components.len()).rev() {
            let dir = components[..depth].join("/");
            let Some(matcher) = self.matcher(&dir) else {
                continue;
            };
            match matcher.matched_path_or_any_parents(&path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }

    fn matcher(&mut self, rel_dir: &str) -> Option<&Gitignore> {
        let root = &self.root;
        self.per_dir
            .entry(rel_dir.to_string())
            .or_insert_with(|| load_dir_rules(&root.join(rel_dir)))
            .as_ref()
    }
}

fn load_dir_rules(dir: &Path) -> Option<Gitignore> {
    let mut builder = GitignoreBuilder::new(dir);
    let mut any = false;
    for name in [".gitignore", ".ignore"] {
        let file = dir.join(name);
        if file.is_file() {
            if let Some(err) = builder.add(&file) {
                tracing::warn!(file = %file.display(), error = %err, "ignore file partly unreadable");
            }
            any = true;
        }
    }
    if !any {
        return None;
    }
    match builder.build() {
        Ok(gi) if !gi.is_empty() => Some(gi),
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "ignore rules not loaded");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn editor_temp_names() {
        for name in [
            ".a.clnrm.toml.swp",
            ".a.swx",
            "a.clnrm.toml~",
            ".#a.clnrm.toml",
            "4913",
            "a.clnrm.toml.tmp",
            "#a.toml.tera#",
            "a.toml___jb_tmp___",
        ] {
            assert!(is_editor_temp(name), "{name}");
        }
        for name in [
            "a.clnrm.toml",
            "_macros.tera",
            "49130",
            "#",
            "cleanroom.toml",
        ] {
            assert!(!is_editor_temp(name), "{name}");
        }
    }

    #[test]
    fn fixed_folders_and_temp_files_are_ignored_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let mut rules = IgnoreRules::new(dir.path(), vec!["cache/x/".into()]);
        for rel in [
            ".git/index",
            "target/debug/x",
            ".clnrm/cache/db",
            "sub/target/x",
            "sub/.a.clnrm.toml.swp",
            ".git",
            "cache/x",
            "cache/x/y",
        ] {
            assert!(rules.is_ignored(rel, false), "{rel}");
        }
        for rel in ["a.clnrm.toml", "targets/a", "cache/xy", "", "sub/git/a"] {
            assert!(!rules.is_ignored(rel, false), "{rel}");
        }
    }

    #[test]
    fn gitignore_files_apply_deepest_first_and_reload_on_invalidate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join(".gitignore"), "gen/\n*.log\n").unwrap();
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/.ignore"), "!keep.log\nlocal.toml\n").unwrap();
        let mut rules = IgnoreRules::new(root, vec![]);
        assert!(rules.is_ignored("gen", true));
        assert!(rules.is_ignored("gen/a.clnrm.toml", false));
        assert!(rules.is_ignored("x.log", false));
        assert!(rules.is_ignored("sub/x.log", false));
        assert!(!rules.is_ignored("sub/keep.log", false));
        assert!(rules.is_ignored("sub/local.toml", false));
        assert!(!rules.is_ignored("local.toml", false));
        assert!(!rules.is_ignored("a.clnrm.toml", false));

        fs::write(root.join(".gitignore"), "*.clnrm.toml\n").unwrap();
        assert!(
            !rules.is_ignored("a.clnrm.toml", false),
            "cached until told"
        );
        rules.invalidate("");
        assert!(rules.is_ignored("a.clnrm.toml", false));
        assert!(!rules.is_ignored("gen/b.toml.tera", false));
    }
}
