//! Container test of the spare test networks' garbage collection: `cache gc`
//! (`reap_pool_orphans`) removes the spares no test is using and leaves a
//! claimed one alone, without calling it an error. A file of its own, so no
//! other test of this crate has a spare claimed while it collects them.
//!
//! Skipped with a notice without an engine, a failure in CI.

use std::collections::BTreeMap;
use std::time::Duration;

use clnrm_exec::{
    host_name, reap_pool_orphans, resolve_images, unix_now, Backend, ContainerRequest, Session,
    LABEL_CREATED, LABEL_HOST, LABEL_MANAGED, LABEL_SPARE_NETWORK,
};

mod common;

use common::*;

fn spare_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_SPARE_NETWORK.to_string(), host_name()),
        (LABEL_HOST.to_string(), host_name()),
        (LABEL_CREATED.to_string(), unix_now().to_string()),
    ])
}

#[tokio::test]
async fn cache_gc_removes_unused_spare_networks_and_keeps_a_claimed_one_quietly() {
    let Some(b) = engine("spare network gc").await else {
        return;
    };
    let session = Session::current();
    let free = format!("clnrm-{}-free-net", session.id);
    let claimed = format!("clnrm-{}-claimed-net", session.id);
    let free_id = b.create_network(&free, &spare_labels()).await.unwrap();
    let claimed_id = b.create_network(&claimed, &spare_labels()).await.unwrap();
    // A running test's claim: its first container, named after the network, on it.
    let p = planned(test("gc", vec![], vec![step("x", argv(&["true"]))]));
    let images = resolve_images(&b, here(), &p).await.unwrap();
    let request = ContainerRequest {
        spec: &p.containers[0],
        image: &images["default"],
        name: claimed.clone(),
        network: Some(&claimed),
        labels: session.labels(),
        root: here(),
        extra_env: Default::default(),
        extra_hosts: Vec::new(),
    };
    let container = b.create_container(&request).await.unwrap();
    b.start_container(&container).await.unwrap();

    let reaped = reap_pool_orphans(&b, Duration::ZERO).await.unwrap();

    b.remove_container(&container).await.unwrap();
    b.remove_network(&claimed_id).await.unwrap();
    assert!(reaped.networks.contains(&free_id), "{reaped:?}");
    assert!(!reaped.networks.contains(&claimed_id), "{reaped:?}");
    assert!(
        !reaped.errors.iter().any(|e| e.contains(&claimed_id)),
        "a claimed spare is in use, not a failure: {reaped:?}"
    );
    assert_clean(&b, &session).await;
}
