//! ACL evaluation and normalisation, following ZooKeeper's
//! `ZooKeeperServer.checkACL`, `PrepRequestProcessor.fixupACL` and the
//! built-in `digest` and `ip` authentication providers.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::proto::{Acl, ErrorCode, Id};

pub const SCHEME_WORLD: &str = "world";
pub const SCHEME_AUTH: &str = "auth";
pub const SCHEME_DIGEST: &str = "digest";
pub const SCHEME_IP: &str = "ip";
pub const SCHEME_SUPER: &str = "super";
/// ZooKeeper's `X509AuthenticationProvider`: a TLS client certificate's subject.
pub const SCHEME_X509: &str = "x509";
pub const ID_ANYONE: &str = "anyone";

/// What a session has authenticated as: always its `ip:<addr>` id, plus one
/// `digest:user:hash` per successful addauth. The super user (ZooKeeper's
/// `super:` id) is a flag rather than an id so it cannot leak into ACLs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub ids: Vec<Id>,
    pub is_super: bool,
}

impl AuthInfo {
    /// A fresh session connected from `addr` (formatted as Java does, so that
    /// `ip` ACLs and whoAmI look like ZooKeeper's).
    pub fn for_client(addr: IpAddr) -> AuthInfo {
        AuthInfo::for_ip_str(&java_host_address(addr))
    }

    pub fn for_ip_str(addr: &str) -> AuthInfo {
        AuthInfo {
            ids: vec![Id::new(SCHEME_IP, addr)],
            is_super: false,
        }
    }

    /// Internal requests (container reaper, tests) that bypass ACLs.
    pub fn superuser() -> AuthInfo {
        AuthInfo {
            ids: Vec::new(),
            is_super: true,
        }
    }

    /// Adds an id unless present (ZooKeeper's `ServerCnxn.addAuthInfo`).
    pub fn add_id(&mut self, id: Id) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }

    /// A TLS client's certificate subject (ZooKeeper's
    /// `X509AuthenticationProvider.handleAuthentication`); the configured
    /// x509 super user also becomes super.
    pub fn add_x509(&mut self, subject: &str, is_super: bool) {
        if is_super {
            self.is_super = true;
        }
        self.add_id(Id::new(SCHEME_X509, subject));
    }

    /// addauth digest `user:password`: adds `digest:user:base64(sha1)`, and
    /// makes the session super if it matches the configured super digest
    /// (`user:base64hash`). ZooKeeper never refuses a digest addauth.
    pub fn add_digest(&mut self, user_colon_password: &str, super_digest: Option<&str>) -> Id {
        let hashed = digest(user_colon_password);
        if super_digest == Some(hashed.as_str()) {
            self.is_super = true;
        }
        let id = Id::new(SCHEME_DIGEST, &hashed);
        self.add_id(id.clone());
        id
    }

    /// Ids that the `auth` ACL scheme expands to: those of providers that
    /// are "authenticated" in ZooKeeper's sense (not ip, world or super).
    fn authenticated_ids(&self) -> impl Iterator<Item = &Id> {
        self.ids
            .iter()
            .filter(|id| !matches!(id.scheme.as_str(), SCHEME_IP | SCHEME_WORLD | SCHEME_SUPER))
    }
}

/// `user:` + base64(sha1("user:password")), ZooKeeper's `generateDigest`.
pub fn digest(user_colon_password: &str) -> String {
    let user = user_colon_password
        .split_once(':')
        .map_or(user_colon_password, |(user, _)| user);
    let hash = Sha1::digest(user_colon_password.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(hash);
    format!("{user}:{encoded}")
}

/// May a session with `auth` do `perm` on a node with `acl`? An empty ACL
/// allows everything (ZooKeeper's rule; fixupACL never stores one).
pub fn check_acl(acl: &[Acl], perm: i32, auth: &AuthInfo) -> bool {
    if acl.is_empty() || auth.is_super {
        return true;
    }
    acl.iter()
        .filter(|entry| entry.perms & perm != 0)
        .any(|entry| acl_entry_matches(&entry.id, auth))
}

fn acl_entry_matches(acl_id: &Id, auth: &AuthInfo) -> bool {
    match acl_id.scheme.as_str() {
        SCHEME_WORLD => acl_id.id == ID_ANYONE,
        // Both compare the whole id text (`X509AuthenticationProvider.matches`).
        SCHEME_DIGEST | SCHEME_X509 => auth.ids.iter().any(|id| id == acl_id),
        SCHEME_IP => auth
            .ids
            .iter()
            .filter(|id| id.scheme == SCHEME_IP)
            .any(|id| ip_matches(&id.id, &acl_id.id)),
        // No provider registered for the scheme: never matches.
        _ => false,
    }
}

/// ZooKeeper's fixupACL: drop duplicates, refuse an empty list, expand
/// `auth` to the session's authenticated ids, refuse unknown schemes and
/// malformed ids (InvalidAcl). Permission bits are not checked (as in ZooKeeper).
/// `x509` ids are known only when the server has TLS (`x509_acls`).
pub fn fix_acl(acl: &[Acl], auth: &AuthInfo, x509_acls: bool) -> Result<Vec<Acl>, ErrorCode> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        match entry.id.scheme.as_str() {
            SCHEME_WORLD if entry.id.id == ID_ANYONE => fixed.push(entry.clone()),
            SCHEME_AUTH => {
                let before = fixed.len();
                fixed.extend(auth.authenticated_ids().map(|id| Acl {
                    perms: entry.perms,
                    id: id.clone(),
                }));
                if fixed.len() == before {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            SCHEME_DIGEST if digest_id_is_valid(&entry.id.id) => fixed.push(entry.clone()),
            SCHEME_IP if ip_id_is_valid(&entry.id.id) => fixed.push(entry.clone()),
            SCHEME_X509 if x509_acls && x500_name_is_valid(&entry.id.id) => {
                fixed.push(entry.clone())
            }
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(fixed)
}

/// `DigestAuthenticationProvider.isValid`: Java's `id.split(":").length == 2`,
/// where split drops trailing empty strings.
fn digest_id_is_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    parts.len() == 2
}

/// `X509AuthenticationProvider.isValid` asks whether `new X500Principal(id)`
/// parses: here, every comma-separated RDN (a backslash escapes) is
/// `type=value` with a type.
fn x500_name_is_valid(id: &str) -> bool {
    let mut rdns = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in id.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | '+' => {
                rdns.push(&id[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    rdns.push(&id[start..]);
    !id.trim().is_empty()
        && rdns.iter().all(|rdn| {
            rdn.split_once('=')
                .is_some_and(|(t, _)| !t.trim().is_empty())
        })
}

/// `IPAuthenticationProvider.isValid`: an address, optionally `/bits`.
fn ip_id_is_valid(id: &str) -> bool {
    parse_ip_expr(id).is_some()
}

/// Parses `addr[/bits]` into (address bytes, prefix bits).
fn parse_ip_expr(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (expr, None),
    };
    let bytes = addr_to_bytes(addr)?;
    let bits_max = bytes.len() * 8;
    let bits = match bits {
        None => bits_max,
        Some(text) => {
            let bits: i32 = text.parse().ok()?;
            usize::try_from(bits).ok().filter(|&b| b <= bits_max)?
        }
    };
    Some((bytes, bits))
}

/// `IPAuthenticationProvider.matches(id, aclExpr)`: compare the session's
/// address with the ACL's address under the ACL's prefix mask.
pub fn ip_matches(client_addr: &str, acl_expr: &str) -> bool {
    let Some((mut acl_bytes, bits)) = parse_ip_expr(acl_expr) else {
        return false;
    };
    let Some(mut client_bytes) = addr_to_bytes(client_addr) else {
        return false;
    };
    if client_bytes.len() != acl_bytes.len() {
        return false;
    }
    mask(&mut acl_bytes, bits);
    mask(&mut client_bytes, bits);
    acl_bytes == client_bytes
}

fn mask(bytes: &mut [u8], bits: usize) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        let kept_bits = bits.saturating_sub(i * 8).min(8);
        *byte &= !(0xffu16 >> kept_bits) as u8;
    }
}

/// ZooKeeper's addr2Bytes: anything with ':' is IPv6, else with '.' IPv4.
fn addr_to_bytes(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') {
        v6_to_bytes(addr)
    } else if addr.contains('.') {
        v4_to_bytes(addr)
    } else {
        None
    }
}

fn v4_to_bytes(addr: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts
        .iter()
        .map(|part| part.parse::<i32>().ok().and_then(|v| u8::try_from(v).ok()))
        .collect()
}

/// ZooKeeper's own IPv6 parser: 8 hex groups, or one "::" with fewer than 8
/// explicit groups; no embedded IPv4 notation.
fn v6_to_bytes(addr: &str) -> Option<Vec<u8>> {
    const GROUPS: usize = 8;
    let halves: Vec<&str> = addr.split("::").collect();
    let (head, tail): (Vec<&str>, Vec<&str>) = match halves.as_slice() {
        [whole] => (whole.split(':').collect(), Vec::new()),
        [head, tail] => (split_groups(head), split_groups(tail)),
        _ => return None,
    };
    let explicit = head.len() + tail.len();
    let full = halves.len() == 1;
    if (full && explicit != GROUPS) || (!full && explicit >= GROUPS) {
        return None;
    }
    let mut bytes = vec![0u8; 16];
    write_v6_groups(&mut bytes[..head.len() * 2], &head)?;
    write_v6_groups(&mut bytes[16 - tail.len() * 2..], &tail)?;
    Some(bytes)
}

fn split_groups(text: &str) -> Vec<&str> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split(':').collect()
    }
}

fn write_v6_groups(out: &mut [u8], groups: &[&str]) -> Option<()> {
    for (chunk, group) in out.chunks_exact_mut(2).zip(groups) {
        if group.is_empty() || group.len() > 4 {
            return None;
        }
        let value = i32::from_str_radix(group, 16).ok()?;
        chunk[0] = (value >> 8) as u8;
        chunk[1] = value as u8;
    }
    Some(())
}

/// Java's `InetAddress.getHostAddress()`: IPv4 dotted, IPv4-mapped IPv6 as
/// IPv4, other IPv6 as eight uncompressed lowercase hex groups.
pub fn java_host_address(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|group| format!("{group:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::perms;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn x509_ids_match_exactly_and_are_authenticated() {
        let mut auth = AuthInfo::for_ip_str("127.0.0.1");
        auth.add_x509("CN=client,O=Example", false);
        let acls = [acl(perms::READ, SCHEME_X509, "CN=client,O=Example")];
        assert!(check_acl(&acls, perms::READ, &auth));
        let other = [acl(perms::READ, SCHEME_X509, "CN=client")];
        assert!(!check_acl(&other, perms::READ, &auth));
        // The auth scheme expands to the x509 id, as in ZooKeeper (isAuthenticated).
        let fixed = fix_acl(&[acl(perms::ALL, SCHEME_AUTH, "")], &auth, true).unwrap();
        assert_eq!(fixed[0].id, Id::new(SCHEME_X509, "CN=client,O=Example"));
    }

    #[test]
    fn x509_acl_ids_must_be_names() {
        let auth = AuthInfo::for_ip_str("127.0.0.1");
        assert!(fix_acl(&[acl(perms::ALL, SCHEME_X509, r"CN=a\,b,O=c")], &auth, true).is_ok());
        assert!(fix_acl(&[acl(perms::ALL, SCHEME_X509, "CN=a+OU=b")], &auth, true).is_ok());
        for bad in ["", "client", "CN=a,", "=a"] {
            assert_eq!(
                fix_acl(&[acl(perms::ALL, SCHEME_X509, bad)], &auth, true),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn x509_super_user_is_super() {
        let mut auth = AuthInfo::for_ip_str("127.0.0.1");
        auth.add_x509("CN=admin", true);
        assert!(auth.is_super);
    }

    #[test]
    fn digest_matches_zookeeper() {
        // Values produced by DigestAuthenticationProvider.generateDigest.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(digest("user:pass"), "user:smGaoVKd/cQkjm7b88GyorAUz20=");
        assert!(digest("nocolon").starts_with("nocolon:"));
    }

    #[test]
    fn world_anyone_allows_by_perm_bit() {
        let auth = AuthInfo::for_ip_str("10.0.0.1");
        let read_only = acl(perms::READ, "world", "anyone");
        assert!(check_acl(
            std::slice::from_ref(&read_only),
            perms::READ,
            &auth
        ));
        assert!(!check_acl(&[read_only], perms::WRITE, &auth));
        assert!(!check_acl(
            &[acl(perms::ALL, "world", "someone")],
            perms::READ,
            &auth
        ));
        assert!(check_acl(&[], perms::ADMIN, &auth), "empty ACL allows all");
    }

    #[test]
    fn digest_acl_needs_matching_addauth() {
        let mut auth = AuthInfo::for_ip_str("10.0.0.1");
        let node_acl = [acl(perms::ALL, "digest", &digest("alice:secret"))];
        assert!(!check_acl(&node_acl, perms::READ, &auth));
        auth.add_digest("alice:wrong", None);
        assert!(!check_acl(&node_acl, perms::READ, &auth));
        auth.add_digest("alice:secret", None);
        assert!(check_acl(&node_acl, perms::READ, &auth));
        auth.add_digest("alice:secret", None);
        assert_eq!(auth.ids.len(), 3, "addauth ids are deduplicated");
    }

    #[test]
    fn super_passes_everything() {
        let super_digest = digest("super:test");
        let mut auth = AuthInfo::for_ip_str("10.0.0.1");
        let node_acl = [acl(perms::READ, "digest", &digest("bob:x"))];
        assert!(!check_acl(&node_acl, perms::ADMIN, &auth));
        auth.add_digest("super:test", Some(&super_digest));
        assert!(auth.is_super);
        assert!(check_acl(&node_acl, perms::ADMIN, &auth));
        assert!(AuthInfo::superuser().is_super);
    }

    #[test]
    fn ip_and_cidr() {
        assert!(ip_matches("10.1.2.3", "10.1.2.3"));
        assert!(!ip_matches("10.1.2.4", "10.1.2.3"));
        assert!(ip_matches("10.1.2.4", "10.1.0.0/16"));
        assert!(!ip_matches("10.2.2.4", "10.1.0.0/16"));
        assert!(ip_matches("10.1.2.4", "10.1.2.0/29"));
        assert!(!ip_matches("10.1.2.4", "10.1.2.0/30"));
        assert!(ip_matches("10.1.2.5", "10.1.2.4/31"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/33"));
        assert!(!ip_matches("::1", "1.2.3.4/0"), "families never mix");
        assert!(ip_matches("0:0:0:0:0:0:0:1", "::1"));
        assert!(ip_matches("fe80:0:0:0:1:2:3:4", "fe80::/16"));
        assert!(!ip_matches("fe81:0:0:0:1:2:3:4", "fe80::/16"));
        assert!(!ip_matches("garbage", "1.2.3.4"));
        let auth = AuthInfo::for_ip_str("192.168.1.77");
        assert!(check_acl(
            &[acl(perms::READ, "ip", "192.168.1.0/24")],
            perms::READ,
            &auth
        ));
        assert!(!check_acl(
            &[acl(perms::READ, "ip", "192.168.2.0/24")],
            perms::READ,
            &auth
        ));
    }

    #[test]
    fn java_address_format() {
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(java_host_address(v6), "0:0:0:0:0:0:0:1");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(java_host_address(mapped), "10.0.0.1");
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            AuthInfo::for_client(v4).ids,
            vec![Id::new("ip", "127.0.0.1")]
        );
    }

    #[test]
    fn fix_acl_expands_auth_and_validates() {
        let mut auth = AuthInfo::for_ip_str("10.0.0.1");
        let auth_acl = [acl(perms::ALL, "auth", "")];
        assert_eq!(
            fix_acl(&auth_acl, &auth, false),
            Err(ErrorCode::InvalidAcl),
            "no authenticated id"
        );
        auth.add_digest("alice:secret", None);
        auth.add_digest("bob:pw", None);
        let fixed = fix_acl(&auth_acl, &auth, false).unwrap();
        assert_eq!(
            fixed,
            vec![
                acl(perms::ALL, "digest", &digest("alice:secret")),
                acl(perms::ALL, "digest", &digest("bob:pw")),
            ]
        );
    }

    #[test]
    fn fix_acl_errors() {
        let auth = AuthInfo::for_ip_str("10.0.0.1");
        let invalid = [
            vec![],
            vec![acl(perms::ALL, "world", "nobody")],
            vec![acl(perms::ALL, "digest", "nocolon")],
            vec![acl(perms::ALL, "digest", "a:b:c")],
            vec![acl(perms::ALL, "digest", "user:")],
            vec![acl(perms::ALL, "ip", "10.0.0")],
            vec![acl(perms::ALL, "ip", "10.0.0.256")],
            vec![acl(perms::ALL, "ip", "10.0.0.1/33")],
            vec![acl(perms::ALL, "ip", "host.example")],
            vec![acl(perms::ALL, "sasl", "user")],
            vec![acl(perms::ALL, "super", "")],
            vec![
                acl(perms::ALL, "world", "anyone"),
                acl(perms::ALL, "x509", "CN=a"),
            ],
        ];
        for acl_list in invalid {
            assert_eq!(
                fix_acl(&acl_list, &auth, false),
                Err(ErrorCode::InvalidAcl),
                "{acl_list:?}"
            );
        }
    }

    #[test]
    fn fix_acl_keeps_valid_entries_and_drops_duplicates() {
        let auth = AuthInfo::for_ip_str("10.0.0.1");
        let input = vec![
            acl(perms::READ, "world", "anyone"),
            acl(perms::READ, "world", "anyone"),
            acl(perms::ALL, "digest", "user:hash="),
            acl(perms::ALL, "digest", "user:hash:"),
            acl(perms::ALL, "ip", "10.0.0.0/8"),
            acl(perms::ALL, "ip", "::1"),
            acl(0, "world", "anyone"),
        ];
        let fixed = fix_acl(&input, &auth, false).unwrap();
        assert_eq!(fixed.len(), input.len() - 1);
        assert_eq!(fixed[0], input[0]);
        assert_eq!(fixed[5], acl(0, "world", "anyone"));
    }
}
