//! The project: its root, `cleanroom.toml`, and the settings every command shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clnrm_config::{Diagnostic, ProjectConfig};

/// Settings that come from the command line, over `cleanroom.toml`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub vars: BTreeMap<String, String>,
    pub seed: Option<u64>,
    pub freeze_clock: Option<String>,
    pub strict: bool,
}

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub config: ProjectConfig,
    /// Warnings from `cleanroom.toml` (unknown keys).
    pub warnings: Vec<Diagnostic>,
    /// Template variables: `--var` over `[vars]`.
    pub vars: BTreeMap<String, String>,
    pub seed: Option<u64>,
    pub freeze_clock: Option<String>,
    pub strict: bool,
    /// Blake3 of `cleanroom.toml` (zeros when absent): part of what a result depends on.
    pub file_hash: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

impl Project {
    pub fn load(root: &Path, overrides: &Overrides) -> Result<Project, ProjectError> {
        let path = root.join("cleanroom.toml");
        let (config, warnings, file_hash) = if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|source| ProjectError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let text = String::from_utf8_lossy(&bytes);
            let (config, warnings) =
                clnrm_config::parse_project("cleanroom.toml", &text, overrides.strict)
                    .map_err(ProjectError::Invalid)?;
            (config, warnings, *blake3::hash(&bytes).as_bytes())
        } else {
            (ProjectConfig::default(), Vec::new(), [0; 32])
        };
        let mut vars = config.vars.clone();
        vars.extend(overrides.vars.clone());
        Ok(Project {
            root: root.to_path_buf(),
            seed: overrides.seed.or(config.seed),
            freeze_clock: overrides
                .freeze_clock
                .clone()
                .or_else(|| config.freeze_clock.clone()),
            strict: overrides.strict,
            vars,
            config,
            warnings,
            file_hash,
        })
    }
}
