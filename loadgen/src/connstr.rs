//! ZooKeeper connect strings: `host:port[,host:port...][/chroot]`.

use std::net::{SocketAddr, ToSocketAddrs};

pub const DEFAULT_PORT: u16 = 2181;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectString {
    /// (host, port) in the order given; IPv6 hosts without brackets.
    pub hosts: Vec<(String, u16)>,
    /// The chroot every path is prefixed with ("" for none), e.g. "/app".
    pub chroot: String,
}

impl ConnectString {
    pub fn parse(s: &str) -> Result<ConnectString, String> {
        let s = s.trim();
        let (hosts_part, chroot) = match s.find('/') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        let chroot = match chroot {
            "" | "/" => String::new(),
            c => {
                if c.ends_with('/') {
                    return Err(format!("chroot {c:?} must not end with '/'"));
                }
                ferrokeeper::tree::validate_path(c)
                    .map_err(|e| format!("invalid chroot {c:?}: {e}"))?;
                c.to_string()
            }
        };
        let mut hosts = Vec::new();
        for part in hosts_part.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            hosts.push(parse_host_port(part)?);
        }
        if hosts.is_empty() {
            return Err(format!("connect string {s:?} names no server"));
        }
        Ok(ConnectString { hosts, chroot })
    }

    /// Resolves every host (its first address); fails if none resolves.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let mut out = Vec::new();
        for (host, port) in &self.hosts {
            let addr = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host}:{port} resolves to no address"))?;
            out.push(addr);
        }
        Ok(out)
    }
}

fn parse_host_port(part: &str) -> Result<(String, u16), String> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("bad port in {part:?}"))
    };
    if let Some(rest) = part.strip_prefix('[') {
        // [v6]:port or [v6]
        let end = rest
            .find(']')
            .ok_or_else(|| format!("unclosed '[' in {part:?}"))?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return Err(format!("junk after ']' in {part:?}")),
        };
        return Ok((host.to_string(), port));
    }
    match part.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => {
            if host.is_empty() {
                return Err(format!("empty host in {part:?}"));
            }
            Ok((host.to_string(), parse_port(p)?))
        }
        // A bare IPv6 address without brackets and port.
        Some(_) => Ok((part.to_string(), DEFAULT_PORT)),
        None => Ok((part.to_string(), DEFAULT_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(h: &str, p: u16) -> (String, u16) {
        (h.to_string(), p)
    }

    #[test]
    fn single_and_multiple_hosts() {
        let c = ConnectString::parse("127.0.0.1:2181").unwrap();
        assert_eq!(c.hosts, vec![hp("127.0.0.1", 2181)]);
        assert_eq!(c.chroot, "");
        let c = ConnectString::parse("a:1,b:2, c ").unwrap();
        assert_eq!(c.hosts, vec![hp("a", 1), hp("b", 2), hp("c", 2181)]);
    }

    #[test]
    fn chroot() {
        let c = ConnectString::parse("h:1,h:2/app/x").unwrap();
        assert_eq!(c.hosts.len(), 2);
        assert_eq!(c.chroot, "/app/x");
        assert_eq!(ConnectString::parse("h:1/").unwrap().chroot, "");
        assert!(ConnectString::parse("h:1/app/").is_err());
        assert!(ConnectString::parse("h:1/a//b").is_err());
    }

    #[test]
    fn ipv6_and_errors() {
        let c = ConnectString::parse("[::1]:2182,[::1]").unwrap();
        assert_eq!(c.hosts, vec![hp("::1", 2182), hp("::1", 2181)]);
        assert!(ConnectString::parse("").is_err());
        assert!(ConnectString::parse("/chroot").is_err());
        assert!(ConnectString::parse("h:0").is_err());
        assert!(ConnectString::parse("h:99999").is_err());
        assert!(ConnectString::parse("h:x").is_err());
        assert!(ConnectString::parse(":5").is_err());
    }

    #[test]
    fn resolves_localhost() {
        let c = ConnectString::parse("127.0.0.1:2181,localhost:3000").unwrap();
        let addrs = c.resolve().unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[0].port(), 2181);
        assert_eq!(addrs[1].port(), 3000);
    }
}
