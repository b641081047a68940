//! Container test of where clnrm's networks get their addresses: each a /24 of
//! `CLNRM_NETWORK_RANGE` (default 172.31.0.0/16), a /24 something else holds skipped,
//! and the engine's own choice once the range is full. A file of its own: it sets the
//! variable for the whole test binary.
//!
//! Skipped with a notice without an engine, a failure in CI.

use clnrm_exec::{Backend, Session};

mod common;

use common::*;

/// The subnet of a network, as `docker network inspect` shows it.
fn subnet_of(name: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            name,
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        ])
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn docker(args: &[&str]) -> bool {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

#[tokio::test]
async fn networks_take_a_free_24_of_the_range_and_the_engines_choice_once_it_is_full() {
    let Some(b) = engine("network range").await else {
        return;
    };
    // Two /24s, one of them held by a network that is not clnrm's.
    std::env::set_var("CLNRM_NETWORK_RANGE", "10.213.4.0/23");
    let session = Session::current();
    let foreign = format!("clnrm-{}-foreign", session.id);
    let first = format!("clnrm-{}-first", session.id);
    let second = format!("clnrm-{}-second", session.id);
    assert!(docker(&[
        "network",
        "create",
        "--subnet",
        "10.213.4.0/24",
        &foreign
    ]));

    let first_id = b.create_network(&first, &session.labels()).await;
    let second_id = b.create_network(&second, &session.labels()).await;
    let (first_subnet, second_subnet) = (subnet_of(&first), subnet_of(&second));
    let gateway = match &first_id {
        Ok(id) => b.network_gateway(id).await.ok(),
        Err(_) => None,
    };

    for id in [&first_id, &second_id].into_iter().flatten() {
        b.remove_network(id).await.unwrap();
    }
    assert!(docker(&["network", "rm", &foreign]));
    first_id.unwrap();
    second_id.unwrap();
    assert_eq!(first_subnet, "10.213.5.0/24", "the free /24 of the range");
    assert_eq!(gateway, Some("10.213.5.1".parse().unwrap()));
    assert!(
        !second_subnet.is_empty() && !second_subnet.starts_with("10.213."),
        "the range is full: the engine picks ({second_subnet})"
    );
    assert_clean(&b, &session).await;
}
