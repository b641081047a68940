//! The remote cache's check: its mode, whether it answers one cheap request, whether
//! values are signed. Only the URL without credentials is ever shown.

use super::Check;
use crate::cache::Remote;

const NAME: &str = "remote_cache";

pub(super) fn check(remote: Result<Option<Remote>, String>) -> Check {
    let remote = match remote {
        Ok(Some(remote)) => remote,
        Ok(None) => return Check::ok(NAME, "not configured (results are cached locally only)"),
        Err(settings) => {
            return Check::fail(
                NAME,
                settings,
                "correct --remote-cache / CLNRM_REMOTE_CACHE or [cache] remote and remote_mode in cleanroom.toml",
            )
        }
    };
    let signed = if remote.is_signed() {
        "signed (CLNRM_REMOTE_CACHE_KEY)"
    } else {
        "unsigned"
    };
    let settings = format!("{} (mode {}, {signed})", remote.shown_url(), remote.mode());
    match remote.probe() {
        Ok(()) => Check::ok(NAME, format!("{settings}: answers")),
        Err(failure) => {
            let fix = if failure.credentials_refused {
                "give credentials the server accepts: user:password in the URL, or CLNRM_REMOTE_CACHE_TOKEN for a Bearer token"
            } else {
                "start the cache server or correct its URL; runs still pass without it, only slower (unset CLNRM_REMOTE_CACHE to stop asking)"
            };
            Check::fail(NAME, format!("{settings}: {}", failure.reason), fix)
        }
    }
}
