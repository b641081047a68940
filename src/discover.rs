//! Discovery (docs/reference.md §1): which files are tests, the project root, test identity.

use std::path::{Path, PathBuf};

use clnrm_config::MatrixInstance;
use ignore::WalkBuilder;

/// What kind of file a path names, by its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `*.clnrm.toml`: plain TOML, never rendered.
    PlainTest,
    /// `*.clnrm.toml.tera`, `*.toml.tera`: rendered, then parsed.
    TemplateTest,
    /// `_*.tera`: importable, never run.
    Library,
    /// `cleanroom.toml`.
    ProjectFile,
    Other,
}

impl FileKind {
    pub fn of(path: &Path) -> FileKind {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return FileKind::Other;
        };
        if name == "cleanroom.toml" {
            FileKind::ProjectFile
        } else if name.starts_with('_') {
            if name.ends_with(".tera") {
                FileKind::Library
            } else {
                FileKind::Other
            }
        } else if name.ends_with(".clnrm.toml") {
            FileKind::PlainTest
        } else if name.ends_with(".toml.tera") {
            FileKind::TemplateTest
        } else {
            FileKind::Other
        }
    }

    pub fn is_test(self) -> bool {
        matches!(self, FileKind::PlainTest | FileKind::TemplateTest)
    }
}

/// A test found on disk: a file, or one combination of a file's `[matrix]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestFile {
    /// Root-relative path with `/` separators: the file's identity.
    pub identity: String,
    pub path: PathBuf,
    pub is_template: bool,
    /// The `[matrix]` combination this test is (set by [`crate::pipeline::Pipeline::expand`]).
    pub instance: Option<MatrixInstance>,
}

impl TestFile {
    /// The test's identity: the file's, plus `[k=v,...]` for a matrix combination. It keys
    /// the result cache's index, `--shard`, `--failed`, `dev` and every report.
    pub fn key(&self) -> String {
        match &self.instance {
            Some(instance) => format!("{}{}", self.identity, instance.label()),
            None => self.identity.clone(),
        }
    }

    /// One combination of this file's `[matrix]`.
    pub fn with_instance(&self, instance: MatrixInstance) -> TestFile {
        TestFile {
            instance: Some(instance),
            ..self.clone()
        }
    }
}

/// The file of a test identity ([`TestFile::key`]): the identity without its matrix label.
/// A matrix needs a template, so a label follows `.tera`.
pub fn file_of(key: &str) -> &str {
    match key.find(".tera[") {
        Some(at) if key.ends_with(']') => &key[..at + ".tera".len()],
        _ => key,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{0}: no such file or directory")]
    Missing(String),
    #[error("{0}: not a test file (tests are named *.clnrm.toml, *.clnrm.toml.tera or *.toml.tera; names starting with `_` are libraries)")]
    NotATest(String),
    #[error("cannot determine the current directory: {0}")]
    Cwd(std::io::Error),
}

/// The project root for `start`: the nearest ancestor holding `cleanroom.toml`, else the
/// git work-tree root, else the current directory when `start` lies inside it, else `start`'s folder.
pub fn find_root(start: &Path, cwd: &Path) -> PathBuf {
    let start = absolute(start, cwd);
    let dir = if start.is_dir() {
        start.clone()
    } else {
        start
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or(start.clone())
    };
    if let Some(found) = dir.ancestors().find(|d| d.join("cleanroom.toml").is_file()) {
        return found.to_path_buf();
    }
    if let Some(found) = dir.ancestors().find(|d| d.join(".git").exists()) {
        return found.to_path_buf();
    }
    if dir.starts_with(cwd) {
        cwd.to_path_buf()
    } else {
        dir
    }
}

/// `path` made absolute against `cwd`, with `.` and `..` folded lexically.
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Root-relative identity of `path` (`/`-separated); paths outside the root keep their
/// absolute form so that they are still unique.
pub fn identity(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every test under `paths` (files named directly are taken as given), sorted by identity.
pub fn discover(
    root: &Path,
    paths: &[PathBuf],
    cwd: &Path,
) -> Result<Vec<TestFile>, DiscoverError> {
    let mut found = Vec::new();
    for given in paths {
        let path = absolute(given, cwd);
        if !path.exists() {
            return Err(DiscoverError::Missing(given.display().to_string()));
        }
        if path.is_file() {
            let kind = FileKind::of(&path);
            if !kind.is_test() {
                return Err(DiscoverError::NotATest(given.display().to_string()));
            }
            found.push(test_file(root, path, kind));
            continue;
        }
        for entry in walker(&path).build().flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let kind = FileKind::of(entry.path());
            if kind.is_test() {
                found.push(test_file(root, entry.into_path(), kind));
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The walker used everywhere files are listed: honours `.gitignore`/`.ignore` (also
/// outside a git repository) and skips `.git/`, `target/` and `.clnrm/`.
pub fn walker(dir: &Path) -> WalkBuilder {
    let mut builder = WalkBuilder::new(dir);
    builder
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| {
            let name = entry.file_name();
            !(entry.file_type().is_some_and(|t| t.is_dir())
                && (name == ".git" || name == "target" || name == ".clnrm"))
        });
    builder
}

fn test_file(root: &Path, path: PathBuf, kind: FileKind) -> TestFile {
    TestFile {
        identity: identity(root, &path),
        is_template: kind == FileKind::TemplateTest,
        path,
        instance: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_naming_rules() {
        assert_eq!(FileKind::of(Path::new("a.clnrm.toml")), FileKind::PlainTest);
        assert_eq!(
            FileKind::of(Path::new("a.clnrm.toml.tera")),
            FileKind::TemplateTest
        );
        assert_eq!(
            FileKind::of(Path::new("a.toml.tera")),
            FileKind::TemplateTest
        );
        assert_eq!(
            FileKind::of(Path::new("_macros.toml.tera")),
            FileKind::Library
        );
        assert_eq!(FileKind::of(Path::new("Cargo.toml")), FileKind::Other);
        assert_eq!(
            FileKind::of(Path::new("cleanroom.toml")),
            FileKind::ProjectFile
        );
        assert_eq!(FileKind::of(Path::new("plain.toml")), FileKind::Other);
    }

    #[test]
    fn absolute_folds_dots() {
        let cwd = Path::new("/a/b");
        assert_eq!(
            absolute(Path::new("../c/./d"), cwd),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(identity(Path::new("/a"), Path::new("/a/c/d")), "c/d");
    }

    #[test]
    fn a_matrix_label_joins_the_identity_and_leaves_the_file() {
        let file = test_file(
            Path::new("/r"),
            PathBuf::from("/r/t/m.clnrm.toml.tera"),
            FileKind::TemplateTest,
        );
        let instance = MatrixInstance {
            values: vec![("os".into(), "a/b".into()), ("ver".into(), "1".into())],
        };
        let key = file.with_instance(instance).key();
        assert_eq!(key, "t/m.clnrm.toml.tera[os=a/b,ver=1]");
        assert_eq!(file_of(&key), "t/m.clnrm.toml.tera");
        assert_eq!(file_of("t/x[1].clnrm.toml"), "t/x[1].clnrm.toml");
    }
}
