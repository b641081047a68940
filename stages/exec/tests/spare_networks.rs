//! Container tests of the spare test networks: `cache gc` (`reap_pool_orphans`)
//! removes the spares no test is using and leaves a claimed one alone, without
//! calling it an error; a test whose claim is lost creates nothing on that
//! network. A file of its own, so no other test of this crate has a spare
//! claimed while these run; they take turns, since gc removes the spares.
//!
//! Skipped with a notice without an engine, a failure in CI.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use clnrm_exec::{
    host_name, reap_pool_orphans, resolve_images, run_test, spare_in_use, trim_spare_networks,
    unix_now, Backend, BoxFuture, ContainerRequest, ContainerStarted, ContainerStatus,
    DockerBackend, EngineInfo, ExecError, ExecOutput, ExecRequest, ManagedObject, ResolvedImage,
    Session, TestRun, LABEL_CREATED, LABEL_HOST, LABEL_MANAGED, LABEL_SPARE_NETWORK,
};
use clnrm_plan::ImageSource;
use futures_util::FutureExt;

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

static SPARES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn cache_gc_removes_unused_spare_networks_and_keeps_a_claimed_one_quietly() {
    let Some(b) = engine("spare network gc").await else {
        return;
    };
    let _turn = SPARES.lock().await;
    let session = Session::current();
    let free = format!("clnrm-{}-free-net", session.id);
    let claimed = format!("clnrm-{}-claimed-net", session.id);
    let just_claimed = format!("clnrm-{}-just-claimed-net", session.id);
    let free_id = b.create_network(&free, &spare_labels()).await.unwrap();
    let claimed_id = b.create_network(&claimed, &spare_labels()).await.unwrap();
    let just_claimed_id = b
        .create_network(&just_claimed, &spare_labels())
        .await
        .unwrap();
    // Running tests' claims: each first container, named after its network, on it; one
    // started, one only created (the engine would let that network go: no endpoint yet).
    let p = planned(test("gc", vec![], vec![step("x", argv(&["true"]))]));
    let images = resolve_images(&b, here(), &p).await.unwrap();
    let request = |network: &'static str| ContainerRequest {
        spec: &p.containers[0],
        image: &images["default"],
        name: network.to_string(),
        network: Some(network),
        labels: session.labels(),
        root: here(),
        extra_env: Default::default(),
        extra_hosts: Vec::new(),
    };
    let claimed: &'static str = claimed.leak();
    let just_claimed: &'static str = just_claimed.leak();
    let started = b.create_container(&request(claimed)).await.unwrap();
    b.start_container(&started).await.unwrap();
    let created = b.create_container(&request(just_claimed)).await.unwrap();

    let reaped = reap_pool_orphans(&b, Duration::ZERO).await.unwrap();

    for container in [&started, &created] {
        b.remove_container(container).await.unwrap();
    }
    let kept = [&claimed_id, &just_claimed_id];
    for network in kept {
        b.remove_network(network).await.unwrap();
    }
    assert!(reaped.networks.contains(&free_id), "{reaped:?}");
    for network in kept {
        assert!(!reaped.networks.contains(network), "{reaped:?}");
        assert!(
            !reaped.errors.iter().any(|e| e.contains(network.as_str())),
            "a claimed spare is in use, not a failure: {reaped:?}"
        );
    }
    assert_clean(&b, &session).await;
}

#[tokio::test]
async fn a_test_whose_claim_is_lost_creates_nothing_else_on_that_network() {
    let Some(b) = engine("lost spare claim").await else {
        return;
    };
    let _turn = SPARES.lock().await;
    // The only spare left is held by another test: its claiming container is on it.
    reap_pool_orphans(&b, Duration::ZERO).await.unwrap();
    let session = Session::current();
    let held = format!("clnrm-{}-held-net", session.id);
    let held_id = b.create_network(&held, &spare_labels()).await.unwrap();
    let p = planned(test(
        "lost",
        vec![service("a"), service("b"), service("c")],
        ["a", "b", "c"]
            .iter()
            .map(|s| on(s, step(s, argv(&["true"]))))
            .collect(),
    ));
    let images = resolve_images(&b, here(), &p).await.unwrap();
    let request = ContainerRequest {
        spec: &p.containers[0],
        image: &images[&p.containers[0].service],
        name: held.clone(),
        network: Some(&held),
        labels: session.labels(),
        root: here(),
        extra_env: Default::default(),
        extra_hosts: Vec::new(),
    };
    let holder = b.create_container(&request).await.unwrap();

    let since = clnrm_test_support::docker_now();
    let report = run(&b, here(), &p).await;
    let created =
        clnrm_test_support::containers_created_since(&since, &[], "{{.Actor.Attributes.name}}");

    b.remove_container(&holder).await.unwrap();
    b.remove_network(&held_id).await.unwrap();
    expect_pass(&report);
    // The claim on the held spare was tried and lost; the test claimed a new spare.
    // Each of its other containers was created once, on that one: none was created on
    // the held network and removed again when the claim was lost.
    let ours: Vec<&String> = created.iter().filter(|n| !n.ends_with("-net")).collect();
    for service in ["b", "c"] {
        let times = ours
            .iter()
            .filter(|n| n.ends_with(&format!("-{service}")))
            .count();
        assert_eq!(times, 1, "`{service}` created {times} times: {created:?}");
    }
}

#[tokio::test]
async fn trimming_keeps_the_newest_idle_spares_and_every_claimed_one() {
    let Some(b) = engine("spare network trim").await else {
        return;
    };
    let _turn = SPARES.lock().await;
    let session = Session::current();
    let mut idle = Vec::new();
    for i in 0..5 {
        let name = format!("clnrm-{}-idle{i}-net", session.id);
        idle.push(b.create_network(&name, &spare_labels()).await.unwrap());
    }
    let claimed: &'static str = format!("clnrm-{}-claimed-net", session.id).leak();
    let claimed_id = b.create_network(claimed, &spare_labels()).await.unwrap();
    let p = planned(test("trim", vec![], vec![step("x", argv(&["true"]))]));
    let images = resolve_images(&b, here(), &p).await.unwrap();
    let claim = b
        .create_container(&ContainerRequest {
            spec: &p.containers[0],
            image: &images["default"],
            name: claimed.to_string(),
            network: Some(claimed),
            labels: session.labels(),
            root: here(),
            extra_env: Default::default(),
            extra_hosts: Vec::new(),
        })
        .await
        .unwrap();

    let trimmed = trim_spare_networks(&b, 2).await.unwrap();

    let left: Vec<String> = b
        .list_spare_networks()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    b.remove_container(&claim).await.unwrap();
    for network in idle.iter().chain([&claimed_id]) {
        b.remove_network(network).await.unwrap();
    }
    // Other processes' spares may be newer than ours: at most two of ours stay.
    let ours_left = idle.iter().filter(|id| left.contains(id)).count();
    assert!(ours_left <= 2, "{ours_left} idle spares left: {trimmed:?}");
    assert!(left.contains(&claimed_id), "a claimed spare stays");
    assert!(trimmed.errors.is_empty(), "{trimmed:?}");
    assert_clean(&b, &session).await;
}

/// The Docker backend, but the first spare network claimed goes right after its
/// claiming create, as when another clnrm ending trims its spares at that moment.
struct SpareTrimmedUnderTheClaim<'a> {
    inner: &'a DockerBackend,
    trimmed: std::sync::Mutex<Option<String>>,
    /// The engine refused to remove the claimed spare.
    refused: std::sync::Mutex<bool>,
}

impl Backend for SpareTrimmedUnderTheClaim<'_> {
    fn ping(&self) -> BoxFuture<'_, Result<EngineInfo, ExecError>> {
        self.inner.ping()
    }
    fn ensure_image<'a>(
        &'a self,
        image: &'a ImageSource,
        root: &'a Path,
    ) -> BoxFuture<'a, Result<ResolvedImage, ExecError>> {
        self.inner.ensure_image(image, root)
    }
    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.inner.create_network(name, labels)
    }
    fn network_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<IpAddr, ExecError>> {
        self.inner.network_gateway(id)
    }
    fn create_container<'a>(
        &'a self,
        request: &'a ContainerRequest<'a>,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        async move {
            let id = self.inner.create_container(request).await?;
            let claims = request.network == Some(request.name.as_str());
            let first = claims && self.trimmed.lock().unwrap().is_none();
            if first {
                // Another clnrm's trim of the spare, between this claim and the start.
                // Podman refuses it (a network a container was created on is in use),
                // so there the claim simply holds.
                let network = request.name.clone();
                match self.inner.remove_network(&network).await {
                    Ok(()) => {}
                    Err(e) if spare_in_use(&e.to_string()) => *self.refused.lock().unwrap() = true,
                    Err(e) => return Err(e),
                }
                *self.trimmed.lock().unwrap() = Some(network);
            }
            Ok(id)
        }
        .boxed()
    }
    fn start_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStarted, ExecError>> {
        self.inner.start_container(id)
    }
    fn container_status<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerStatus, ExecError>> {
        self.inner.container_status(id)
    }
    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        self.inner.container_logs(id, lines)
    }
    fn exec<'a>(
        &'a self,
        container: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        self.inner.exec(container, request)
    }
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.inner.remove_container(id)
    }
    fn remove_network<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.inner.remove_network(id)
    }
    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        self.inner.list_managed()
    }
    fn list_spare_networks(&self) -> BoxFuture<'_, Result<Vec<ManagedObject>, ExecError>> {
        self.inner.list_spare_networks()
    }
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), ExecError>> {
        self.inner.remove_image(reference)
    }
    fn list_build_images(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ExecError>> {
        self.inner.list_build_images()
    }
}

#[tokio::test]
async fn a_spare_removed_between_its_claim_and_the_start_is_given_up_for_another() {
    let Some(b) = engine("spare trimmed under the claim").await else {
        return;
    };
    let _turn = SPARES.lock().await;
    let session = Session::current();
    let spare = format!("clnrm-{}-trimmed-net", session.id);
    b.create_network(&spare, &spare_labels()).await.unwrap();
    let backend = SpareTrimmedUnderTheClaim {
        inner: &b,
        trimmed: Default::default(),
        refused: Default::default(),
    };
    let p = planned(test(
        "trimmed",
        vec![service("a"), service("b")],
        vec![
            on("b", step("b", argv(&["true"]))),
            on("a", step("a_reaches_b", sh("ping -c 1 -W 5 b"))),
        ],
    ));

    let report = run_test(TestRun {
        backend: &backend,
        session: &session,
        root: here(),
        plan: &p,
        images: None,
    })
    .await;

    assert!(
        backend.trimmed.lock().unwrap().is_some(),
        "a spare was claimed"
    );
    expect_pass(&report);
    assert!(report.teardown_errors.is_empty(), "{report:?}");
    assert_clean(&b, &session).await;
    if *backend.refused.lock().unwrap() {
        // Podman: the spare stayed under the claim, and is left for the next test.
        let spares = b.list_spare_networks().await.unwrap();
        assert!(spares.iter().any(|n| n.name == spare), "{spares:?}");
        b.remove_network(&spare).await.unwrap();
    }
}
