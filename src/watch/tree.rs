//! The folders a [`super::Watcher`] watches and the rules that choose them: one
//! non-recursive watch per folder the ignore rules let through, following new,
//! removed and re-ignored folders. Not the event loop or the debounce.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use super::affected::PROJECT_FILE;
use super::error::WatchError;
use super::rules::{is_ignore_file, IgnoreRules};

/// A path the watcher was asked for, root-relative: a folder (with everything under
/// it) or one file.
#[derive(Debug, Clone)]
pub(super) enum Scope {
    Dir(String),
    File(String),
}

/// The watched folders and the rules that choose them.
pub(super) struct Tree {
    pub(super) root: PathBuf,
    pub(super) scopes: Vec<Scope>,
    pub(super) rules: IgnoreRules,
    /// Folders watched whatever the rules say: the root, parents of files.
    pub(super) pinned: BTreeSet<String>,
    /// Root-relative folders with a non-recursive watch.
    pub(super) watched: BTreeSet<String>,
    pub(super) notify: RecommendedWatcher,
}

impl Tree {
    fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Watches the scopes' folders (and the root) that `rules` let through. When this
    /// returns, every watch is in place.
    pub(super) fn watch(
        root: PathBuf,
        scopes: Vec<Scope>,
        rules: IgnoreRules,
        notify: RecommendedWatcher,
    ) -> Result<Tree, WatchError> {
        let mut tree = Tree {
            root,
            scopes,
            rules,
            pinned: BTreeSet::new(),
            watched: BTreeSet::new(),
            notify,
        };
        tree.watch_initial()?;
        Ok(tree)
    }

    fn watch_initial(&mut self) -> Result<(), WatchError> {
        self.pinned.insert(String::new());
        for scope in &self.scopes {
            if let Scope::File(file) = scope {
                self.pinned.insert(parent(file).to_string());
            }
        }
        let mut dirs = self.pinned.clone();
        for scope in self.scopes.clone() {
            if let Scope::Dir(dir) = scope {
                self.collect(&dir, &mut dirs);
            }
        }
        for dir in dirs {
            let abs = self.abs(&dir);
            self.notify
                .watch(&abs, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Notify { path: abs, source })?;
            self.watched.insert(dir);
        }
        Ok(())
    }

    /// Watches a folder outside the project with the same watcher (its events
    /// share the project's queue and order), e.g. the catch-up fence's.
    pub(super) fn watch_outside(&mut self, dir: &Path) -> Result<(), WatchError> {
        self.notify
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Notify {
                path: dir.to_path_buf(),
                source,
            })
    }

    /// Watches one more path.
    pub(super) fn add_scope(&mut self, scope: Scope) -> Result<(), WatchError> {
        let top = match &scope {
            Scope::Dir(dir) => dir.clone(),
            Scope::File(file) => parent(file).to_string(),
        };
        if !self.watched.contains(&top) {
            let abs = self.abs(&top);
            self.notify
                .watch(&abs, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Notify { path: abs, source })?;
            self.watched.insert(top.clone());
        }
        match &scope {
            Scope::Dir(dir) => {
                let mut files = Vec::new();
                self.watch_new_tree(dir, &mut files);
            }
            Scope::File(_) => {
                self.pinned.insert(top);
            }
        }
        self.scopes.push(scope);
        Ok(())
    }

    /// Whether a change of `rel` concerns the watched paths.
    pub(super) fn in_scope(&self, rel: &str) -> bool {
        if rel == PROJECT_FILE || is_ignore_file(rel) {
            return true;
        }
        self.scopes.iter().any(|scope| match scope {
            Scope::Dir(dir) => dir.is_empty() || is_same_or_under(rel, dir),
            Scope::File(file) => rel == file,
        })
    }

    /// Adds `rel_dir` and the folders under it that the rules let through to
    /// `dirs`.
    fn collect(&mut self, rel_dir: &str, dirs: &mut BTreeSet<String>) {
        if !rel_dir.is_empty() && self.rules.is_ignored(rel_dir, true) {
            return;
        }
        dirs.insert(rel_dir.to_string());
        let entries = match fs::read_dir(self.abs(rel_dir)) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::debug!(dir = rel_dir, error = %err, "folder not read");
                return;
            }
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // Symbolic links are not followed: their targets may lie anywhere.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.collect(&join(rel_dir, &name), dirs);
            }
        }
    }

    /// Watches a folder that just appeared and the folders under it, each
    /// before reading it, so that no file created meanwhile is missed; the
    /// files found are added to `files`.
    pub(super) fn watch_new_tree(&mut self, rel_dir: &str, files: &mut Vec<String>) {
        if self.rules.is_ignored(rel_dir, true) {
            return;
        }
        if !self.watched.contains(rel_dir) {
            match self
                .notify
                .watch(&self.abs(rel_dir), RecursiveMode::NonRecursive)
            {
                Ok(()) => {
                    self.watched.insert(rel_dir.to_string());
                }
                Err(err) => {
                    // Gone already: its removal arrives as an event.
                    tracing::debug!(dir = rel_dir, error = %err, "folder not watched");
                    return;
                }
            }
        }
        let Ok(entries) = fs::read_dir(self.abs(rel_dir)) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let rel = join(rel_dir, &name);
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.watch_new_tree(&rel, files);
            } else if !self.rules.is_ignored(&rel, false) {
                files.push(rel);
            }
        }
    }

    fn watch_dirs(&mut self, dirs: BTreeSet<String>) {
        for dir in dirs {
            if self.watched.contains(&dir) {
                continue;
            }
            match self
                .notify
                .watch(&self.abs(&dir), RecursiveMode::NonRecursive)
            {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                // It may be gone already; its removal arrives as an event.
                Err(err) => tracing::debug!(dir, error = %err, "folder not watched"),
            }
        }
    }

    /// Stops watching `rel_dir` and everything under it.
    pub(super) fn forget(&mut self, rel_dir: &str) {
        let gone: Vec<String> = self
            .watched
            .iter()
            .filter(|d| is_same_or_under(d, rel_dir) && !self.pinned.contains(*d))
            .cloned()
            .collect();
        for dir in gone {
            // notify drops the watch of a deleted folder by itself.
            let _ = self.notify.unwatch(&self.abs(&dir));
            self.watched.remove(&dir);
        }
    }

    /// Re-applies the rules to the whole tree after an ignore file changed.
    pub(super) fn rewalk(&mut self) {
        let mut desired = self.pinned.clone();
        for scope in self.scopes.clone() {
            if let Scope::Dir(dir) = scope {
                self.collect(&dir, &mut desired);
            }
        }
        let stale: Vec<String> = self.watched.difference(&desired).cloned().collect();
        for dir in stale {
            let _ = self.notify.unwatch(&self.abs(&dir));
            self.watched.remove(&dir);
        }
        self.watch_dirs(desired);
    }
}

/// `path` relative to `root` with `/` separators, if it lies under it.
pub(super) fn relative(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for component in rest.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

pub(super) fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(dir, _)| dir)
}

pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `rel` is `dir` or lies under it (`""` holds everything).
pub(super) fn is_same_or_under(rel: &str, dir: &str) -> bool {
    dir.is_empty() || rel == dir || rel.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_use_slashes_and_stay_under_the_root() {
        let root = Path::new("/p/root");
        assert_eq!(
            relative(root, Path::new("/p/root/a/b.toml")).as_deref(),
            Some("a/b.toml")
        );
        assert_eq!(relative(root, Path::new("/p/root")).as_deref(), Some(""));
        assert_eq!(relative(root, Path::new("/p/rootx/a")), None);
        assert_eq!(relative(root, Path::new("/p/root/../x")), None);
    }

    #[test]
    fn folder_containment() {
        assert!(is_same_or_under("a/b", "a"));
        assert!(is_same_or_under("a", "a"));
        assert!(is_same_or_under("x", ""));
        assert!(!is_same_or_under("ab", "a"));
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("c"), "");
        assert_eq!(join("", "c"), "c");
        assert_eq!(join("a", "c"), "a/c");
    }
}
