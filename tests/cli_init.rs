//! `clnrm init` as a user meets it: the files it writes are valid TOML whatever image
//! name the command line gave, and they say exactly that image.

mod common;

use common::TestProject;

fn image_in(project: &TestProject, file: &str, key_path: &[&str]) -> String {
    let text = std::fs::read_to_string(project.path(file)).expect("init wrote the file");
    let parsed: toml::Value = toml::from_str(&text)
        .unwrap_or_else(|err| panic!("{file} is not valid TOML: {err}\n{text}"));
    let value = key_path
        .iter()
        .try_fold(&parsed, |table, key| table.get(key))
        .unwrap_or_else(|| panic!("{file} has no {}\n{text}", key_path.join(".")));
    value.as_str().expect("the image is a string").to_string()
}

#[test]
fn an_image_name_with_quotes_and_backslashes_stays_one_toml_string() {
    let project = TestProject::new();
    let image = r#"registry.local/a"b\c:1 # not a comment"#;
    project.clnrm(&["init", "--image", image]).expect_code(0);

    assert_eq!(
        image_in(&project, "cleanroom.toml", &["vars", "image"]),
        image
    );
    assert_eq!(
        image_in(&project, "cleanroom.toml", &["defaults", "image"]),
        image
    );
    assert_eq!(
        image_in(
            &project,
            "tests/hello.clnrm.toml",
            &["service", "box", "image"]
        ),
        image
    );
    // clnrm itself reads them as written.
    project
        .clnrm(&["render", "tests/hello.clnrm.toml"])
        .expect_code(0);
    project.clnrm(&["validate"]).expect_code(0);
}

#[test]
fn the_default_project_reads_as_the_user_would_write_it() {
    let project = TestProject::new();
    project.clnrm(&["init"]).expect_code(0);
    let text = std::fs::read_to_string(project.path("cleanroom.toml")).unwrap();
    assert!(text.contains("image = \"alpine:3.20\""), "{text}");
    assert!(text.starts_with("# clnrm project file"), "{text}");
}
