//! Build contexts: the files of a context folder as a deterministic tar
//! (relative paths, modes and contents; no owners, no times), minus what
//! `.dockerignore` excludes, and the blake3 hash that names the built image.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// A build context ready to send to the engine.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// blake3 (hex) of the tar and the Dockerfile path: the image is `clnrm-build/<hash>`.
    pub hash: String,
    /// Relative to the context.
    pub dockerfile: String,
    /// The tar archive of the context.
    pub tar: Vec<u8>,
    /// Number of files (and links) in the archive.
    pub files: usize,
}

impl BuildContext {
    /// The tag the built image gets.
    pub fn image_tag(&self) -> String {
        format!("clnrm-build/{}", self.hash)
    }
}

/// Reads `context` (an existing folder) into a [`BuildContext`].
pub fn build_context(context: &Path, dockerfile: &str) -> io::Result<BuildContext> {
    let meta = fs::metadata(context).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("build context {}: {e}", context.display()),
        )
    })?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("build context {} is not a folder", context.display()),
        ));
    }
    let dockerfile = dockerfile.trim_start_matches("./").to_string();
    if !context.join(&dockerfile).is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "build context {}: no Dockerfile at {dockerfile}",
                context.display()
            ),
        ));
    }
    let ignore = match fs::read_to_string(context.join(".dockerignore")) {
        Ok(text) => DockerIgnore::parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DockerIgnore::default(),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    walk(context, PathBuf::new(), &ignore, &dockerfile, &mut entries)?;

    // ustar headers with no owners and no times: the same files give the same bytes.
    let mut tar = tar::Builder::new(Vec::new());
    let mut files = 0;
    for (rel, path) in &entries {
        let meta = fs::symlink_metadata(path)?;
        let ft = meta.file_type();
        let mut header = tar::Header::new_ustar();
        header.set_mode(permissions(&meta));
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{rel}/"), io::empty())?;
        } else if ft.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, rel, fs::read_link(path)?)?;
            files += 1;
        } else if ft.is_file() {
            let data = fs::read(path)?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, rel, data.as_slice())?;
            files += 1;
        }
    }
    let tar = tar.into_inner()?;
    let mut hasher = blake3::Hasher::new();
    // v2: the archive is written by the `tar` crate (v1's hand-written one
    // differed in header details), so v1 hashes name other bytes.
    hasher.update(b"clnrm.build-context.v2\0");
    hasher.update(dockerfile.as_bytes());
    hasher.update(b"\0");
    hasher.update(&tar);
    Ok(BuildContext {
        hash: hasher.finalize().to_hex().to_string(),
        dockerfile,
        tar,
        files,
    })
}

#[cfg(unix)]
fn permissions(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permissions(meta: &fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else {
        0o644
    }
}

/// Depth-first, sorted by name, so the archive (and its hash) is deterministic.
fn walk(
    dir: &Path,
    rel: PathBuf,
    ignore: &DockerIgnore,
    dockerfile: &str,
    out: &mut Vec<(String, PathBuf)>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel_path = rel.join(&name);
        let rel_str = rel_path.to_string_lossy().replace('\\', "/");
        // The engine needs the Dockerfile and .dockerignore even when excluded
        // (the docker CLI sends them regardless).
        let keep = rel_str == dockerfile || rel_str == ".dockerignore";
        let excluded = !keep && ignore.excludes(&rel_str);
        let is_dir = fs::symlink_metadata(&path)?.is_dir();
        if is_dir {
            if !excluded {
                out.push((rel_str, path.clone()));
                walk(&path, rel_path, ignore, dockerfile, out)?;
            } else if ignore.has_exceptions() {
                // An exception (`!dir/keep`) may re-include something below.
                walk(&path, rel_path, ignore, dockerfile, out)?;
            }
        } else if !excluded {
            out.push((rel_str, path));
        }
    }
    Ok(())
}

/// `.dockerignore` rules: one pattern a line, `#` comments, `!` exceptions,
/// `**` for any number of folders; every pattern is anchored at the context
/// root (unlike `.gitignore`, `*.log` does not match `sub/a.log`). The last
/// matching rule wins, and a rule that matches a folder applies to everything
/// inside it. Each rule is matched by the `ignore` crate's gitignore matcher,
/// anchored with a leading `/`; the order of rules is kept here, as docker
/// applies it (a gitignore file cannot re-include below an excluded folder).
#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<(Gitignore, bool)>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let mut builder = GitignoreBuilder::new(".");
            // A pattern the matcher rejects matches nothing, as docker skips it.
            if builder.add_line(None, &format!("/{pattern}")).is_err() {
                continue;
            }
            if let Ok(rule) = builder.build() {
                rules.push((rule, negated));
            }
        }
        DockerIgnore { rules }
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, negated)| *negated)
    }

    /// Whether the context-relative path `rel` is left out.
    pub fn excludes(&self, rel: &str) -> bool {
        let mut excluded = false;
        for (rule, negated) in &self.rules {
            // The path or one of its parent folders.
            if rule.matched_path_or_any_parents(rel, false).is_ignore() {
                excluded = !negated;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean` for patterns, and no leading `/` (rules are context-rooted).
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let ig = DockerIgnore::parse(
            "# comment\n\n*.log\n/target\nnode_modules\n**/*.tmp\ndocs/**\n!docs/keep.md\n",
        );
        assert!(ig.excludes("a.log"));
        assert!(!ig.excludes("sub/a.log"), "* does not cross folders");
        assert!(ig.excludes("target"));
        assert!(
            ig.excludes("target/debug/x"),
            "a folder rule covers its contents"
        );
        assert!(ig.excludes("node_modules/x/y.js"));
        assert!(ig.excludes("a/b/c.tmp"));
        assert!(ig.excludes("c.tmp"));
        assert!(ig.excludes("docs/a.md"));
        assert!(!ig.excludes("docs/keep.md"), "exceptions re-include");
        assert!(!ig.excludes("src/main.rs"));
        assert!(!ig.excludes("sub/target"), "rules are anchored at the root");
    }

    #[test]
    fn the_last_matching_dockerignore_rule_wins_as_docker_applies_them() {
        let ig = DockerIgnore::parse("!keep/a.txt\nkeep\n");
        assert!(ig.excludes("keep/a.txt"), "a later folder rule overrides");
        let ig = DockerIgnore::parse("keep\n!keep/a.txt\nkeep/**/*.bin\n");
        assert!(!ig.excludes("keep/a.txt"));
        assert!(ig.excludes("keep/b.txt"));
        assert!(ig.excludes("keep/x/y/z.bin"));
        let ig = DockerIgnore::parse("./build/../dist/\n");
        assert!(
            ig.excludes("dist/app.js"),
            "patterns are cleaned like docker does"
        );
    }

    fn write(dir: &Path, rel: &str, data: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    #[test]
    fn hash_follows_contents_and_paths_and_skips_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "Dockerfile", "FROM scratch\nCOPY a /a\n");
        write(d, "a", "1");
        write(d, ".dockerignore", "*.log\nDockerfile\n");
        let first = build_context(d, "Dockerfile").unwrap();
        assert_eq!(first.hash.len(), 64);
        assert_eq!(first.image_tag(), format!("clnrm-build/{}", first.hash));
        assert_eq!(build_context(d, "Dockerfile").unwrap().hash, first.hash);

        write(d, "debug.log", "noise");
        assert_eq!(
            build_context(d, "Dockerfile").unwrap().hash,
            first.hash,
            "ignored files do not count"
        );
        write(d, "a", "2");
        let changed = build_context(d, "Dockerfile").unwrap();
        assert_ne!(changed.hash, first.hash, "contents count");
        write(d, "a", "1");
        assert_eq!(build_context(d, "Dockerfile").unwrap().hash, first.hash);
        fs::rename(d.join("a"), d.join("b")).unwrap();
        assert_ne!(
            build_context(d, "Dockerfile").unwrap().hash,
            first.hash,
            "paths count"
        );
        // The Dockerfile is sent although .dockerignore names it.
        let ctx = build_context(d, "Dockerfile").unwrap();
        assert!(contains(&ctx.tar, b"Dockerfile"));
        assert!(!contains(&ctx.tar, b"debug.log"));
    }

    #[test]
    fn missing_context_or_dockerfile_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = build_context(&dir.path().join("nope"), "Dockerfile").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = build_context(dir.path(), "Dockerfile").unwrap_err();
        assert!(e.to_string().contains("no Dockerfile"), "{e}");
    }

    #[test]
    fn the_archive_reads_back_with_long_names_links_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "Dockerfile", "FROM scratch\n");
        let long = "d/".repeat(60) + "file";
        write(d, &long, "hello");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(d.join(&long), fs::Permissions::from_mode(0o750)).unwrap();
            std::os::unix::fs::symlink("d/".repeat(60) + "file", d.join("link")).unwrap();
        }
        let ctx = build_context(d, "Dockerfile").unwrap();
        let mut archive = tar::Archive::new(ctx.tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let header = entry.header().clone();
            assert_eq!(header.mtime().unwrap(), 0, "{path}");
            assert_eq!(header.uid().unwrap(), 0, "{path}");
            if path == long {
                let mut text = String::new();
                io::Read::read_to_string(&mut entry, &mut text).unwrap();
                assert_eq!(text, "hello");
                #[cfg(unix)]
                assert_eq!(header.mode().unwrap(), 0o750);
            }
            #[cfg(unix)]
            if path == "link" {
                let target = entry.link_name().unwrap().unwrap();
                assert_eq!(target.to_string_lossy(), long);
            }
            seen.push(path);
        }
        assert!(seen.contains(&long), "{seen:?}");
        assert!(seen.contains(&"Dockerfile".to_string()), "{seen:?}");
        #[cfg(unix)]
        assert!(seen.contains(&"link".to_string()), "{seen:?}");
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }
}
