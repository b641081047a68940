//! A cache hit never returns a different output than running the stage would: random
//! projects of templates and libraries take random edits (templates, libraries, env
//! vars), and after each edit every test is checked through the persistent memo and
//! through a fresh one; the rendered bytes and records must be identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use clnrm::cache::{Memo, MemoOptions};
use clnrm::discover::TestFile;
use clnrm::pipeline::Pipeline;
use clnrm::project::Project;
use clnrm_render::World;
use proptest::prelude::*;

#[derive(Default)]
struct MapWorld {
    files: RwLock<BTreeMap<PathBuf, Vec<u8>>>,
    env: RwLock<BTreeMap<String, String>>,
}

impl World for MapWorld {
    fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.read().unwrap().get(path).cloned()
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.read().unwrap().get(name).cloned()
    }
}

const LIBS: [&str; 3] = ["lib/_a.tera", "lib/_b.tera", "_top.tera"];

fn library(index: usize, version: u8) -> String {
    // _b imports _a, so an edit of _a reaches _b's importers too.
    let import = if index == 1 {
        "{% import \"_a.tera\" as a %}\n"
    } else {
        ""
    };
    let inner = if index == 1 {
        "{{ a::step(n=n ~ \"x\") }}"
    } else {
        ""
    };
    format!(
        "{import}{{% macro step(n) -%}}\n[[steps]]\nname = \"{{{{ n }}}}{version}\"\ncommand = [\"echo\", \"{index}-{version}\"]\n{inner}\n{{%- endmacro step %}}\n"
    )
}

fn template(libs: &[usize], reads_env: bool, version: u8) -> String {
    let mut text = String::new();
    for (i, lib) in libs.iter().enumerate() {
        let path = if *lib == 2 {
            "_top.tera".to_string()
        } else {
            LIBS[*lib].to_string()
        };
        text.push_str(&format!("{{% import \"{path}\" as m{i} %}}\n"));
    }
    text.push_str(&format!("[meta]\nname = \"t{version}\"\nversion = \"1\"\n"));
    if reads_env {
        text.push_str("description = \"{{ env(name='CLNRM_EQ', default='none') }}\"\n");
    }
    for i in 0..libs.len() {
        text.push_str(&format!("{{{{ m{i}::step(n=\"s{i}\") }}}}\n"));
    }
    if libs.is_empty() {
        text.push_str("[[steps]]\nname = \"only\"\ncommand = [\"true\"]\n");
    }
    text
}

#[derive(Debug, Clone)]
enum Edit {
    Library(usize),
    Template(usize),
    Env(Option<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..LIBS.len()).prop_map(Edit::Library),
        (0..4usize).prop_map(Edit::Template),
        proptest::option::of(0..3u8).prop_map(Edit::Env),
    ]
}

fn test_spec() -> impl Strategy<Value = (Vec<usize>, bool)> {
    (
        proptest::collection::vec(0..LIBS.len(), 0..3),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn cached_and_uncached_renders_are_byte_identical(
        specs in proptest::collection::vec(test_spec(), 1..4),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let root = PathBuf::from("/project");
        let world = MapWorld::default();
        let mut lib_versions = [0u8; LIBS.len()];
        let mut test_versions = vec![0u8; specs.len()];
        let write = |rel: &str, text: String| {
            world.files.write().unwrap().insert(root.join(rel), text.into_bytes());
        };
        for (i, lib) in LIBS.iter().enumerate() {
            write(lib, library(i, 0));
        }
        let tests: Vec<TestFile> = (0..specs.len())
            .map(|i| TestFile {
                identity: format!("tests/t{i}.clnrm.toml.tera"),
                path: root.join(format!("tests/t{i}.clnrm.toml.tera")),
                is_template: true,
            instance: None,
            })
            .collect();
        for (i, (libs, env)) in specs.iter().enumerate() {
            write(&tests[i].identity, template(libs, *env, 0));
        }
        let dir = tempfile::tempdir().unwrap();
        let (memo, _) = Memo::open(dir.path(), MemoOptions::default());
        let project = Project {
            root: root.clone(),
            config: Default::default(),
            warnings: Vec::new(),
            vars: BTreeMap::new(),
            seed: Some(1),
            freeze_clock: Some("2025-01-01T00:00:00Z".into()),
            strict: false,
            file_hash: [0; 32],
        };
        for step in std::iter::once(None).chain(edits.into_iter().map(Some)) {
            match step {
                None => {}
                Some(Edit::Library(i)) => {
                    lib_versions[i] += 1;
                    write(LIBS[i], library(i, lib_versions[i]));
                }
                Some(Edit::Template(i)) => {
                    let i = i % specs.len();
                    test_versions[i] += 1;
                    let (libs, env) = &specs[i];
                    write(&tests[i].identity, template(libs, *env, test_versions[i]));
                }
                Some(Edit::Env(value)) => {
                    let mut env = world.env.write().unwrap();
                    match value {
                        Some(v) => env.insert("CLNRM_EQ".into(), format!("v{v}")),
                        None => env.remove("CLNRM_EQ"),
                    };
                }
            }
            let cached = Pipeline::new(&project, &world, &memo).check_all(&tests);
            let fresh_memo = Memo::in_memory(MemoOptions::default());
            let fresh = Pipeline::new(&project, &world, &fresh_memo).check_all(&tests);
            for (a, b) in cached.iter().zip(&fresh) {
                let (a, b) = (a.outcome.as_ref().unwrap(), b.outcome.as_ref().unwrap());
                prop_assert_eq!(&a.toml, &b.toml);
                prop_assert_eq!(&a.record, &b.record);
                prop_assert_eq!(&a.config, &b.config);
            }
        }
    }
}
