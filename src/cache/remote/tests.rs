//! Unit tests of the remote tier's pure parts.

use super::*;

#[test]
fn modes_parse_and_say_what_they_allow() {
    assert_eq!("read".parse::<RemoteMode>(), Ok(RemoteMode::Read));
    assert_eq!("readwrite".parse::<RemoteMode>(), Ok(RemoteMode::ReadWrite));
    assert!("rw".parse::<RemoteMode>().is_err());
    assert!(RemoteMode::Read.reads() && !RemoteMode::Read.writes());
    assert!(!RemoteMode::Write.reads() && RemoteMode::Write.writes());
}

#[test]
fn the_breaker_opens_at_once_for_a_timeout_and_after_three_server_errors() {
    let breaker = Breaker::default();
    assert!(!breaker.record(&Failure::Server(500)));
    assert!(!breaker.record(&Failure::Server(502)));
    assert!(breaker.record(&Failure::Server(500)));
    let breaker = Breaker::default();
    assert!(breaker.record(&Failure::Timeout(Duration::from_secs(1))));
    let breaker = Breaker::default();
    assert!(breaker.record(&Failure::Unauthorized(401)));
}

#[test]
fn figures_round_trip_and_tolerate_garbage() {
    let figures = RemoteFigures {
        hits: 1,
        misses: 2,
        errors: 3,
        rejected: 4,
        uploads: 5,
        bytes_down: 6,
        bytes_up: 7,
    };
    assert_eq!(RemoteFigures::decode(&figures.encode()), figures);
    assert_eq!(RemoteFigures::decode(b"short"), RemoteFigures::default());
}

#[test]
fn debug_never_shows_secrets() {
    let options = RemoteOptions {
        url: "https://ci:hunter2@cache.example.com/x".into(),
        mode: RemoteMode::ReadWrite,
        token: Some("tok-secret".into()),
        signing_secret: Some("mac-secret".into()),
        timeout: DEFAULT_REMOTE_TIMEOUT,
        stages: vec!["result".into()],
    };
    let shown = format!("{options:?} {:?}", Remote::new(&options).unwrap());
    for secret in ["hunter2", "tok-secret", "mac-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn timeouts_parse_as_seconds() {
    assert_eq!(parse_remote_timeout("0.5"), Ok(Duration::from_millis(500)));
    assert!(parse_remote_timeout("0").is_err());
    assert!(parse_remote_timeout("soon").is_err());
}
