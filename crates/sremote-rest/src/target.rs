//! The `newt+https://USER@HOST[:PORT]/BASE/MACHINE` host syntax (as [`NewtConnector::host`]
//! prints it), for command lines and configuration.
//!
//! [`NewtConnector::host`]: sremote_core::Connector::host

use sremote_core::{ConnectorError, ConnectorErrorKind};

/// A parsed `newt+http(s)://` host: where the API is, which machine, as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewtTarget {
    /// The API root, e.g. `https://gw.example.org/newt`.
    pub base_url: String,
    /// The machine name (the last path segment).
    pub machine: String,
    /// The user, when the URL names one.
    pub user: Option<String>,
}

impl NewtTarget {
    /// Whether `host` uses this syntax (starts with `newt+http://` or `newt+https://`).
    pub fn matches(host: &str) -> bool {
        host.starts_with("newt+https://") || host.starts_with("newt+http://")
    }

    /// Parse `newt+https://alice@gw.example.org/newt/cluster`. A password in the URL is
    /// refused: it would end up in shell history and process lists.
    pub fn parse(host: &str) -> Result<NewtTarget, ConnectorError> {
        let bad = |d: &str| {
            ConnectorError::new(ConnectorErrorKind::InvalidInput, host, "parse the host")
                .detail(d.to_string())
                .hint("write newt+https://USER@HOST[:PORT]/BASE/MACHINE")
        };
        let rest = host
            .strip_prefix("newt+")
            .filter(|_| Self::matches(host))
            .ok_or_else(|| bad("not a newt+http(s):// URL"))?;
        let mut url = reqwest::Url::parse(rest).map_err(|e| bad(&e.to_string()))?;
        if url.password().is_some() {
            return Err(bad(
                "a password in the URL is refused; use SREMOTE_NEWT_PASSWORD or the prompt",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || url.host_str().is_none() {
            return Err(bad("no query, fragment or empty host allowed"));
        }
        let user = (!url.username().is_empty()).then(|| {
            percent_encoding::percent_decode_str(url.username())
                .decode_utf8_lossy()
                .into_owned()
        });
        let path = url.path().trim_end_matches('/').to_string();
        let (base, machine) = path.rsplit_once('/').unwrap_or(("", ""));
        let machine = percent_encoding::percent_decode_str(machine)
            .decode_utf8_lossy()
            .into_owned();
        if machine.is_empty() {
            return Err(bad("the URL must end with the machine name"));
        }
        let _ = url.set_username("");
        url.set_path(base);
        let base_url = url.as_str().trim_end_matches('/').to_string();
        Ok(NewtTarget {
            base_url,
            machine,
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let t = NewtTarget::parse("newt+https://alice@gw.example.org/newt/cluster").expect("parse");
        assert_eq!(t.base_url, "https://gw.example.org/newt");
        assert_eq!(
            (t.machine.as_str(), t.user.as_deref()),
            ("cluster", Some("alice"))
        );
        let t = NewtTarget::parse("newt+http://127.0.0.1:8080/m/").expect("parse");
        assert_eq!(
            (t.base_url.as_str(), t.machine.as_str(), t.user),
            ("http://127.0.0.1:8080", "m", None)
        );
        for bad in [
            "https://gw/newt/m",
            "newt+ftp://gw/m",
            "newt+https://a:pw@gw/newt/m",
            "newt+https://gw/",
            "newt+https://gw/n/m?x=1",
        ] {
            assert!(NewtTarget::parse(bad).is_err(), "{bad}");
        }
        assert!(NewtTarget::matches("newt+https://x/m") && !NewtTarget::matches("user@host"));
    }
}
