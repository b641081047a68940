//! Waiting for Ctrl-C or SIGTERM, the signals that end a `clnrm dev` session (and
//! cancel a run in progress). Only waits: what an interrupt means is the caller's.

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM.
pub async fn wait_for_interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
