//! The remote cache configured in `cleanroom.toml` (`[cache] remote`, `remote_mode`),
//! the flags over it, and settings that cannot work refused before anything runs.

mod common;
mod remote_servers;

use common::{docker_ready, TestProject};
use remote_servers::{passing_test, Nginx};

#[test]
fn cleanroom_toml_names_the_remote_and_the_flag_overrides_its_mode() {
    if !docker_ready() {
        return;
    }
    let Some(nginx) = Nginx::start() else { return };
    let project = TestProject::new();
    project.write(
        "cleanroom.toml",
        &format!(
            "[cache]\nremote = \"{}\"\nremote_mode = \"read\"\n",
            nginx.url()
        ),
    );
    project.write("tests/a.clnrm.toml", &passing_test("a", "from-config"));
    project
        .clnrm_with(&["run"], &[("CLNRM_REMOTE_CACHE", "")])
        .expect_code(0);
    assert_eq!(nginx.count("GET"), 1, "{:?}", nginx.requests());
    assert_eq!(
        nginx.count("PUT"),
        0,
        "remote_mode = \"read\" uploads nothing"
    );

    project
        .clnrm_with(
            &["run", "--force", "--remote-cache-mode", "readwrite"],
            &[("CLNRM_REMOTE_CACHE", "")],
        )
        .expect_code(0);
    assert_eq!(nginx.count("PUT"), 1, "the flag wins over the file");
}

#[test]
fn settings_that_cannot_work_are_usage_errors_naming_their_place() {
    let project = TestProject::new();
    project.write("tests/a.clnrm.toml", &passing_test("a", "x"));

    project.write("cleanroom.toml", "[cache]\nremote_mode = \"rw\"\n");
    project
        .clnrm(&["validate"])
        .expect_code(2)
        .expect_contains("cleanroom.toml")
        .expect_contains("remote_mode")
        .expect_contains("\"read\", \"write\" or \"readwrite\"");

    project.write("cleanroom.toml", "");
    project
        .clnrm(&["validate", "--remote-cache-mode", "both"])
        .expect_code(2)
        .expect_contains("expected read, write or readwrite");
    project
        .clnrm(&["validate", "--remote-cache", "cache.example.com"])
        .expect_code(2)
        .expect_contains("remote cache URL cache.example.com: expected http://");
    project
        .clnrm_with(
            &["validate", "--remote-cache", "http://127.0.0.1:9/"],
            &[("CLNRM_REMOTE_CACHE_TIMEOUT", "soon")],
        )
        .expect_code(2)
        .expect_contains("CLNRM_REMOTE_CACHE_TIMEOUT=\"soon\"");
}
