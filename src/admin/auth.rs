//! The `Authorization` header of the commands ZooKeeper 3.9 guards
//! (`snapshot`, `restore`), read as `Commands.handleAuthentication` does:
//! `<scheme>[ <auth data>]`, split on single spaces (Java's
//! `String.split(" ")`, which drops trailing empty parts), one or two parts.
//! `digest user:password` gives that digest id (and super, if it is the
//! configured super digest); `ip` gives the caller's address. The
//! AdminServer is plain HTTP, so `x509` has no certificate to read, and
//! fails as ZooKeeper's provider does without one; any other scheme has no
//! provider.

use std::net::IpAddr;

use crate::tree::AuthInfo;

/// Why a request has no identity; each is ZooKeeper's 401 reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// A header that names no usable identity.
    Failed,
}

impl AuthError {
    /// The `error` of ZooKeeper's reply.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "Auth info is missing for the command",
            AuthError::Failed => "Not authenticated",
        }
    }
}

/// The identity an `Authorization` header names, for a request from `peer`.
pub fn identity(
    header: Option<&str>,
    peer: IpAddr,
    super_digest: Option<&str>,
) -> Result<AuthInfo, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let parts = java_split_on_space(header);
    let (scheme, data) = match parts.as_slice() {
        [scheme] => (*scheme, None),
        [scheme, data] => (*scheme, Some(*data)),
        _ => return Err(AuthError::Failed),
    };
    match (scheme, data) {
        // `new String(null)` of a missing part throws: a failed auth.
        ("digest", Some(user_password)) => {
            let mut auth = AuthInfo::default();
            auth.add_digest(user_password, super_digest);
            Ok(auth)
        }
        ("ip", _) => Ok(AuthInfo::for_client(peer)),
        _ => Err(AuthError::Failed),
    }
}

/// `String.split(" ")`: every single space separates, and trailing empty
/// parts are dropped (a string of spaces only gives no parts).
fn java_split_on_space(text: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = text.split(' ').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts == [""] && text.starts_with(' ') {
        parts.clear();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Id;
    use crate::tree::digest;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn digest_and_ip_name_their_ids() {
        let auth = identity(Some("digest alice:secret"), PEER, None).unwrap();
        assert_eq!(auth.ids, vec![Id::new("digest", &digest("alice:secret"))]);
        assert!(!auth.is_super);
        let auth = identity(Some("ip"), PEER, None).unwrap();
        assert_eq!(auth.ids, vec![Id::new("ip", "127.0.0.1")]);
        // Auth data after `ip` is ignored, as IPAuthenticationProvider does.
        assert!(identity(Some("ip whatever"), PEER, None).is_ok());
    }

    #[test]
    fn the_super_digest_makes_a_super_user() {
        let super_digest = digest("super:test");
        let auth = identity(Some("digest super:test"), PEER, Some(&super_digest)).unwrap();
        assert!(auth.is_super);
    }

    #[test]
    fn malformed_headers_fail_as_zookeeper_does() {
        assert_eq!(identity(None, PEER, None), Err(AuthError::Missing));
        for header in [
            "digest",
            "digest ",
            "digest  a:b",
            "digest a:b c",
            "Digest a:b",
            "x509",
            "sasl x",
            "",
            " digest a:b",
        ] {
            assert_eq!(
                identity(Some(header), PEER, None),
                Err(AuthError::Failed),
                "{header:?}"
            );
        }
    }

    #[test]
    fn java_split_drops_trailing_empty_parts_only() {
        assert_eq!(java_split_on_space("a b  "), vec!["a", "b"]);
        assert_eq!(java_split_on_space(" a"), vec!["", "a"]);
        assert_eq!(java_split_on_space(""), vec![""]);
    }
}
