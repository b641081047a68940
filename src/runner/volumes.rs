//! What a test's result depends on in its volumes: one blake3 over the relative path
//! and content hash of every file under every volume host path of a plan.
//!
//! File contents are hashed only when a file changed: each file's content hash is
//! stored in the cache under its path and what `stat` says of it (size, modification
//! and change times, inode), so a cached run costs one `stat` and one lookup per
//! file. A file whose stat is younger than [`RACY_SECS`] is hashed but not recorded:
//! it could change again within the same timestamp and look the same (git's "racy
//! clean" problem). A file that cannot be read is an error naming it, never skipped:
//! a skipped file would let a stale `PASS (cached)` through.
//!
//! This is not a pipeline stage: it reads the file system and the clock, and runs in
//! the runner before any container starts.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clnrm_plan::TestPlan;
use serde::Serialize;

use crate::cache::{Key, Memo};

/// The cache tree of file content hashes.
pub const VOLUME_FILE_STAGE: &str = "volume-file";
const RECORD_VERSION: u32 = 1;

/// How old a file's last change must be before its hash is trusted to its stat.
pub const RACY_SECS: u64 = 2;

/// A volume file or folder that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("volume {}: cannot read {}: {source}", .volume, .path.display())]
pub struct VolumeError {
    /// The volume's host path as the test wrote it.
    pub volume: String,
    /// The file or folder that could not be read.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// blake3 over the relative paths and contents of every volume host path of `plan`
/// (host paths are relative to `root`).
pub fn volumes_hash(memo: &Memo, root: &Path, plan: &TestPlan) -> Result<[u8; 32], VolumeError> {
    let mut hasher = blake3::Hasher::new();
    for container in &plan.containers {
        for volume in &container.volumes {
            hasher.update(volume.host_path.as_bytes());
            let fail = |path: &Path, source| VolumeError {
                volume: volume.host_path.clone(),
                path: path.to_path_buf(),
                source,
            };
            let top = root.join(&volume.host_path);
            let mut files = Vec::new();
            list_files(&top, &top, 0, &mut files).map_err(|(path, e)| fail(&path, e))?;
            files.sort();
            for (relative, path) in files {
                let hash = content_hash(memo, &path).map_err(|e| fail(&path, e))?;
                hasher.update(&(relative.len() as u64).to_le_bytes());
                hasher.update(relative.as_bytes());
                hasher.update(&hash);
            }
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

/// (path relative to `top`, full path) of every file under `path`; a file `top` is
/// its own single file with an empty relative path. Symbolic links are followed,
/// as the engine's bind mount shows their targets; a loop of them ends at
/// [`MAX_DEPTH`] as an error.
fn list_files(
    top: &Path,
    path: &Path,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), (PathBuf, io::Error)> {
    if depth > MAX_DEPTH {
        let message = format!("more than {MAX_DEPTH} folders deep (a loop of symbolic links?)");
        return Err((path.to_path_buf(), io::Error::other(message)));
    }
    let meta = fs::metadata(path).map_err(|e| (path.to_path_buf(), e))?;
    if !meta.is_dir() {
        let relative = path
            .strip_prefix(top)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        out.push((relative, path.to_path_buf()));
        return Ok(());
    }
    let entries = fs::read_dir(path).map_err(|e| (path.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (path.to_path_buf(), e))?;
        list_files(top, &entry.path(), depth + 1, out)?;
    }
    Ok(())
}

/// How deep a volume's folders may nest.
const MAX_DEPTH: usize = 64;

/// What `stat` says of a file that changes whenever its contents do.
#[derive(Serialize)]
struct Fingerprint<'a> {
    path: &'a Path,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
    inode: u64,
}

fn since_epoch_ns(time: io::Result<SystemTime>) -> i128 {
    time.ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(unix)]
fn changed_and_inode(meta: &fs::Metadata) -> (i128, u64) {
    use std::os::unix::fs::MetadataExt;
    let changed = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
    (changed, meta.ino())
}

#[cfg(not(unix))]
fn changed_and_inode(_meta: &fs::Metadata) -> (i128, u64) {
    (0, 0)
}

/// The blake3 of one file's contents, from the cache when its stat is unchanged.
fn content_hash(memo: &Memo, path: &Path) -> io::Result<[u8; 32]> {
    let meta = fs::metadata(path)?;
    let (changed_ns, inode) = changed_and_inode(&meta);
    let modified_ns = since_epoch_ns(meta.modified());
    let fingerprint = Fingerprint {
        path,
        size: meta.len(),
        modified_ns,
        changed_ns,
        inode,
    };
    let key = Key::new(
        VOLUME_FILE_STAGE,
        RECORD_VERSION,
        &bincode::serialize(&fingerprint).expect("a fingerprint serializes"),
    );
    if let Some(hash) = memo.get_value::<[u8; 32]>(VOLUME_FILE_STAGE, &key) {
        memo.record_hit(VOLUME_FILE_STAGE);
        return Ok(hash);
    }
    memo.record_miss(VOLUME_FILE_STAGE);
    let hash = *blake3::hash(&fs::read(path)?).as_bytes();
    let now_ns = since_epoch_ns(Ok(SystemTime::now()));
    let settled = Duration::from_secs(RACY_SECS).as_nanos() as i128;
    if now_ns - modified_ns.max(changed_ns) >= settled {
        memo.put_value(VOLUME_FILE_STAGE, &key, &hash);
    }
    Ok(hash)
}
