//! Build contexts: the files of a context folder as a deterministic tar
//! (relative paths, modes and contents; no owners, no times), minus what
//! `.dockerignore` excludes, and the blake3 hash that names the built image.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

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

    let mut tar = TarWriter::default();
    let mut files = 0;
    for (rel, path) in &entries {
        let meta = fs::symlink_metadata(path)?;
        let mode = permissions(&meta);
        let ft = meta.file_type();
        if ft.is_dir() {
            tar.append(&format!("{rel}/"), b'5', mode, &[], "");
        } else if ft.is_symlink() {
            let target = fs::read_link(path)?;
            tar.append(rel, b'2', mode, &[], &target.to_string_lossy());
            files += 1;
        } else if ft.is_file() {
            let data = fs::read(path)?;
            tar.append(rel, b'0', mode, &data, "");
            files += 1;
        }
    }
    let tar = tar.finish();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"clnrm.build-context.v1\0");
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
/// `**` for any number of folders; the last matching rule wins, and a rule
/// that matches a folder applies to everything inside it.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<(GlobMatcher, bool)>,
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
            if let Ok(glob) = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
            {
                rules.push((glob.compile_matcher(), negated));
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
        for (glob, negated) in &self.rules {
            // A rule matching the path or one of its parent folders.
            let mut matched = glob.is_match(rel);
            if !matched {
                let mut end = 0;
                while let Some(i) = rel[end..].find('/') {
                    end += i;
                    if glob.is_match(&rel[..end]) {
                        matched = true;
                        break;
                    }
                    end += 1;
                }
            }
            if matched {
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

/// A minimal ustar writer (GNU long names for paths over 100 bytes), enough
/// for the engine's build endpoint.
#[derive(Default)]
struct TarWriter {
    buf: Vec<u8>,
}

impl TarWriter {
    fn append(&mut self, name: &str, kind: u8, mode: u32, data: &[u8], link: &str) {
        if name.len() > 100 {
            self.header("././@LongLink", b'L', 0o644, name.len() as u64 + 1, "");
            self.data(&[name.as_bytes(), b"\0"].concat());
        }
        if link.len() > 100 {
            self.header("././@LongLink", b'K', 0o644, link.len() as u64 + 1, "");
            self.data(&[link.as_bytes(), b"\0"].concat());
        }
        self.header(name, kind, mode, data.len() as u64, link);
        self.data(data);
    }

    fn header(&mut self, name: &str, kind: u8, mode: u32, size: u64, link: &str) {
        let mut h = [0u8; 512];
        put(&mut h[0..100], name.as_bytes());
        put(&mut h[100..108], format!("{mode:07o}").as_bytes());
        put(&mut h[108..116], b"0000000");
        put(&mut h[116..124], b"0000000");
        put(&mut h[124..136], format!("{size:011o}").as_bytes());
        put(&mut h[136..148], b"00000000000");
        h[156] = kind;
        put(&mut h[157..257], link.as_bytes());
        put(&mut h[257..263], b"ustar\0");
        put(&mut h[263..265], b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
        self.buf.extend_from_slice(&h);
    }

    fn data(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.resize(self.buf.len() + pad, 0);
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.resize(self.buf.len() + 1024, 0);
        self.buf
    }
}

/// Copies as much of `src` as fits (names longer than the field are carried by a long-name entry).
fn put(field: &mut [u8], src: &[u8]) {
    let n = src.len().min(field.len());
    field[..n].copy_from_slice(&src[..n]);
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
    fn tar_headers_are_well_formed() {
        let mut t = TarWriter::default();
        let long = "d/".repeat(60) + "file";
        t.append(&long, b'0', 0o644, b"hello", "");
        let tar = t.finish();
        assert_eq!(tar.len() % 512, 0);
        // Long name entry first, with a valid checksum.
        assert_eq!(tar[156], b'L');
        let check = |h: &[u8]| {
            let stored =
                u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap().trim(), 8).unwrap();
            let sum: u32 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u32::from(b)
                    }
                })
                .sum();
            assert_eq!(stored, sum);
        };
        check(&tar[..512]);
        check(&tar[1024..1536]);
        assert_eq!(&tar[512..512 + long.len()], long.as_bytes());
        assert_eq!(&tar[1536..1541], b"hello");
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }
}
