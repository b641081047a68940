//! `clnrm graph` of the example project: what `dev` knows about which test depends on
//! what, drawn for Graphviz (checked by `dot` itself), Mermaid and JSON. No
//! containers: the graph comes from rendering, parsing and planning.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use clnrm_test_support::{containers_required, notice};
use common::{clnrm_command, repo};

fn graph(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = clnrm_command()
        .current_dir(repo())
        .env("CLNRM_CACHE_DIR", dir.path())
        .args(["graph", "fixtures/example", "--format", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clnrm graph failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn graphviz_accepts_the_dot_graph_of_the_example_project() {
    let dot = graph("dot");
    // The template reads the macro library; the built service comes from its context.
    assert!(
        dot.contains("\"test:tests/greet.clnrm.toml.tera\" -> \"file:tests/lib/_checks.tera\""),
        "{dot}"
    );
    assert!(dot.contains("\"build:images/greeter/Dockerfile\""), "{dot}");
    assert!(
        dot.contains("\"image:clnrm-fixture/busybox:latest\""),
        "{dot}"
    );
    let spawned = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut graphviz) = spawned else {
        if containers_required() {
            panic!("Graphviz `dot` is missing under CI (.ci/run installs graphviz)");
        }
        notice("skipping the Graphviz check: `dot` is not installed");
        return;
    };
    graphviz
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = graphviz.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "dot rejected the graph: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

#[test]
fn the_json_graph_names_every_node_it_links_and_every_test_of_the_project() {
    let json: serde_json::Value = serde_json::from_str(&graph("json")).unwrap();
    let ids: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap())
        .collect();
    for edge in json["edges"].as_array().unwrap() {
        for end in ["from", "to"] {
            let id = edge[end].as_str().unwrap();
            assert!(ids.contains(&id), "edge {edge} names unknown node {id}");
        }
    }
    let tests = ids.iter().filter(|id| id.starts_with("test:")).count();
    assert_eq!(tests, 6, "every example test is drawn: {ids:?}");
    let mermaid = graph("mermaid");
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert_eq!(
        mermaid.matches("-->").count(),
        json["edges"].as_array().unwrap().len()
    );
}
