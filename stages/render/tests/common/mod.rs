//! An in-memory [`World`] for tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clnrm_render::{render, RenderError, RenderRequest, Rendered, World};

#[derive(Default, Clone)]
pub struct MemWorld {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub env: BTreeMap<String, String>,
}

impl World for MemWorld {
    fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.get(path).cloned()
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}

/// A project under `root` with files given by root-relative path.
pub struct Project {
    pub root: PathBuf,
    pub world: MemWorld,
}

impl Project {
    pub fn new(root: &str) -> Self {
        Project {
            root: PathBuf::from(root),
            world: MemWorld::default(),
        }
    }
    pub fn file(&mut self, rel: &str, text: &str) -> &mut Self {
        self.world
            .files
            .insert(self.root.join(rel), text.as_bytes().to_vec());
        self
    }
    pub fn bytes(&mut self, rel: &str, bytes: &[u8]) -> &mut Self {
        self.world.files.insert(self.root.join(rel), bytes.to_vec());
        self
    }
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.world.env.insert(name.into(), value.into());
        self
    }
    pub fn request(&self, rel: &str) -> RenderRequest {
        let path = self.root.join(rel);
        let source = self
            .world
            .files
            .get(&path)
            .map(|b| String::from_utf8(b.clone()).unwrap())
            .unwrap_or_default();
        RenderRequest {
            root: self.root.clone(),
            template_path: path,
            source,
            vars: BTreeMap::new(),
            seed: None,
            freeze_clock: None,
        }
    }
    pub fn render(&self, rel: &str) -> Result<Rendered, RenderError> {
        render(&self.request(rel), &self.world)
    }
    /// Renders `rel` with the clock frozen at `freeze_clock` (RFC 3339).
    pub fn render_frozen(&self, rel: &str, freeze_clock: &str) -> Result<Rendered, RenderError> {
        let mut req = self.request(rel);
        req.freeze_clock = Some(freeze_clock.into());
        render(&req, &self.world)
    }
}
