//! The remote cache's transport: `GET` and `PUT <base>/ac/<key>` over a blocking,
//! pooled HTTP client (ureq; the memo runs on rayon threads, not on an async
//! runtime). Every outcome that is not a hit, a miss or a stored value becomes a
//! [`Failure`] whose text never holds the URL's credentials or the token.
//! Not the circuit breaker or the counters: those are `mod.rs`.

use std::error::Error as _;
use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use super::endpoint::Endpoint;

/// Largest value accepted from the remote: results are tiny, so anything this
/// big is not ours.
const MAX_VALUE_BYTES: u64 = 64 * 1024 * 1024;
/// Connections kept open to the cache server; as many as concurrent fetches.
pub(crate) const MAX_CONNECTIONS: usize = 32;

/// Why a request to the remote did not give an answer the cache can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer within the timeout.
    Timeout(Duration),
    /// No connection (refused, unresolvable, TLS).
    Unreachable(String),
    /// 401 or 403: the credentials are missing or wrong.
    Unauthorized(u16),
    /// 5xx.
    Server(u16),
    /// Any other status that is neither a hit nor a miss.
    Status(u16),
    /// The answer broke off or could not be read.
    Body(String),
}

impl Failure {
    /// Whether asking again in this run is pointless: another request would only
    /// wait for the same timeout, meet the same closed port or the same refusal.
    pub(crate) fn is_fatal_at_once(&self) -> bool {
        matches!(
            self,
            Failure::Timeout(_) | Failure::Unreachable(_) | Failure::Unauthorized(_)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout(t) => write!(f, "no answer within {}s", t.as_secs_f64()),
            Failure::Unreachable(why) => write!(f, "cannot connect ({why})"),
            Failure::Unauthorized(code) => write!(
                f,
                "refused with {code}: check the credentials (user:password in the URL, or CLNRM_REMOTE_CACHE_TOKEN)"
            ),
            Failure::Server(code) => write!(f, "server error {code}"),
            Failure::Status(code) => write!(f, "unexpected status {code}"),
            Failure::Body(why) => write!(f, "the answer could not be read ({why})"),
        }
    }
}

/// A pooled client for one cache server.
pub(crate) struct HttpClient {
    agent: ureq::Agent,
    endpoint: Endpoint,
    timeout: Duration,
}

impl HttpClient {
    pub(crate) fn new(endpoint: Endpoint, timeout: Duration) -> HttpClient {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .max_idle_connections(MAX_CONNECTIONS)
            .max_idle_connections_per_host(MAX_CONNECTIONS)
            // A redirect could carry the Authorization header somewhere else.
            .redirects(0)
            .user_agent(concat!("clnrm/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpClient {
            agent,
            endpoint,
            timeout,
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn request(&self, method: &str, hex: &str) -> ureq::Request {
        let request = self.agent.request(method, &self.endpoint.entry_url(hex));
        match self.endpoint.authorization() {
            Some(value) => request.set("Authorization", value),
            None => request,
        }
    }

    /// `GET`: `Some(bytes)` on 200, `None` on 404 or 204.
    pub(crate) fn get(&self, hex: &str) -> Result<Option<Vec<u8>>, Failure> {
        match self.request("GET", hex).call() {
            Ok(response) if response.status() == 204 => Ok(None),
            Ok(response) if response.status() == 200 => {
                let mut body = Vec::new();
                response
                    .into_reader()
                    .take(MAX_VALUE_BYTES)
                    .read_to_end(&mut body)
                    .map_err(|e| self.io_failure(&e))?;
                Ok(Some(body))
            }
            Ok(response) => Err(Failure::Status(response.status())),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(err) => Err(self.failure(err)),
        }
    }

    /// `PUT`: any 2xx is stored.
    pub(crate) fn put(&self, hex: &str, body: &[u8]) -> Result<(), Failure> {
        match self
            .request("PUT", hex)
            .set("Content-Type", "application/octet-stream")
            .send_bytes(body)
        {
            Ok(response) if (200..300).contains(&response.status()) => Ok(()),
            Ok(response) => Err(Failure::Status(response.status())),
            Err(err) => Err(self.failure(err)),
        }
    }

    fn failure(&self, err: ureq::Error) -> Failure {
        match err {
            ureq::Error::Status(code @ (401 | 403), _) => Failure::Unauthorized(code),
            ureq::Error::Status(code, _) if code >= 500 => Failure::Server(code),
            ureq::Error::Status(code, _) => Failure::Status(code),
            ureq::Error::Transport(transport) => {
                if let Some(io) = transport
                    .source()
                    .and_then(|s| s.downcast_ref::<io::Error>())
                {
                    if is_timeout(io) {
                        return Failure::Timeout(self.timeout);
                    }
                }
                // The kind, never the message: ureq's messages can quote the URL.
                let kind = transport.kind();
                match kind {
                    ureq::ErrorKind::Io
                    | ureq::ErrorKind::BadStatus
                    | ureq::ErrorKind::BadHeader
                        if transport.to_string().contains("timed out") =>
                    {
                        Failure::Timeout(self.timeout)
                    }
                    ureq::ErrorKind::Io
                    | ureq::ErrorKind::BadStatus
                    | ureq::ErrorKind::BadHeader
                    | ureq::ErrorKind::TooManyRedirects => Failure::Body(kind.to_string()),
                    _ => Failure::Unreachable(kind.to_string()),
                }
            }
        }
    }

    fn io_failure(&self, e: &io::Error) -> Failure {
        if is_timeout(e) {
            Failure::Timeout(self.timeout)
        } else {
            Failure::Body(e.kind().to_string())
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}
