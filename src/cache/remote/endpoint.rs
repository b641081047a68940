//! The remote cache's address: an `http(s)://` base URL whose entries live at
//! `<base>/ac/<64 hex key>` (Bazel's HTTP cache protocol), and the credentials that
//! came with it. Credentials are split off at once and only ever leave this file as
//! an `Authorization` header value: what can be shown ([`Endpoint::shown`],
//! [`redact`]) never contains them. Not the HTTP client: that is `http.rs`.

use std::fmt;

use base64::Engine as _;

use super::RemoteConfigError;

/// Where the remote cache is, and how to authenticate to it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port][/path]`, without credentials or a trailing `/`.
    base: String,
    /// `Basic …` from `user:pass@` in the URL, or `Bearer …` from the token.
    authorization: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Endpoint {
    /// Parses `raw` (`https://user:pass@host/prefix`). A `token` (from
    /// `CLNRM_REMOTE_CACHE_TOKEN`) is sent as a Bearer token and wins over
    /// credentials in the URL.
    pub(crate) fn parse(raw: &str, token: Option<&str>) -> Result<Endpoint, RemoteConfigError> {
        let invalid = |reason: &str| RemoteConfigError::Url {
            url: redact(raw),
            reason: reason.to_string(),
        };
        let raw = raw.trim();
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| invalid("expected http://… or https://…"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(invalid("only http:// and https:// are supported"));
        }
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(invalid("a query or fragment is not part of a cache URL"));
        }
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid("no host"));
        }
        let basic = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let user =
                    percent_decode(user).ok_or_else(|| invalid("bad %-escape in the user"))?;
                let pass =
                    percent_decode(pass).ok_or_else(|| invalid("bad %-escape in the password"))?;
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode([user.as_slice(), b":", pass.as_slice()].concat());
                Some(format!("Basic {encoded}"))
            }
        };
        let authorization = match token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => Some(format!("Bearer {token}")),
            None => basic,
        };
        Ok(Endpoint {
            base: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
            authorization,
        })
    }

    /// The URL of the entry `hex` (a 64-hex-digit key).
    pub(crate) fn entry_url(&self, hex: &str) -> String {
        format!("{}/ac/{hex}", self.base)
    }

    /// The base URL, safe to show: it never holds credentials.
    pub(crate) fn shown(&self) -> &str {
        &self.base
    }

    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }
}

/// `raw` with any `user:pass@` replaced by `***@`, for messages about a URL that
/// may not even parse.
pub(crate) fn redact(raw: &str) -> String {
    let raw = raw.trim();
    let (prefix, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), raw),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{prefix}***@{}", &rest[at + 1..]),
        None => format!("{prefix}{rest}"),
    }
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_a_basic_header_and_leave_the_url() {
        let endpoint =
            Endpoint::parse("https://ci:s%40cret@cache.example.com/clnrm/", None).expect("valid");
        assert_eq!(endpoint.shown(), "https://cache.example.com/clnrm");
        let expected = base64::engine::general_purpose::STANDARD.encode("ci:s@cret");
        assert_eq!(
            endpoint.authorization(),
            Some(format!("Basic {expected}").as_str())
        );
        assert_eq!(
            endpoint.entry_url("ab"),
            "https://cache.example.com/clnrm/ac/ab"
        );
        assert!(!format!("{endpoint:?}").contains("Basic"));
    }

    #[test]
    fn a_token_is_a_bearer_and_wins_over_the_url() {
        let endpoint = Endpoint::parse("http://u:p@127.0.0.1:9090", Some("tok")).unwrap();
        assert_eq!(endpoint.authorization(), Some("Bearer tok"));
        assert_eq!(endpoint.shown(), "http://127.0.0.1:9090");
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        for raw in [
            "ftp://u:hunter2@host/x",
            "u:hunter2@host",
            "http://u:hunter2@/x",
            "http://u:hunter2@host/x?y",
            "http://u:hunter2%zz@host/",
        ] {
            let err = Endpoint::parse(raw, None).expect_err(raw).to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert_eq!(redact("https://a:b@h/p@q"), "https://***@h/p@q");
        assert_eq!(redact("https://h/p"), "https://h/p");
    }
}
