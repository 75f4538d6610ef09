//! The ensemble as the election runtime sees it: who we are, where every
//! member's election port is, who votes, and the config text every
//! notification carries. Built from zoo.cfg ([`Ensemble::from_config`]) or
//! directly (tests, a future reconfig).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::config::Config;
use crate::limits::quorum as limits;
use crate::zab::election::Sid;
use crate::zab::election_wire::ElectionAddr;

/// One `server.N` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub sid: Sid,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// `(host, port)` of an explicit `;[host:]port` client part: ZooKeeper
    /// writes it into the config text only when the line had one.
    pub client: Option<(String, u16)>,
}

impl Member {
    /// Resolves the election address now (hostnames may move, as
    /// `QuorumPeer.recreateSocketAddresses` allows for before each dial).
    pub fn election_socket_addr(&self) -> std::io::Result<SocketAddr> {
        resolve(&self.host, self.election_port)
    }

    /// The quorum (learner) port's address, resolved now.
    pub fn quorum_socket_addr(&self) -> std::io::Result<SocketAddr> {
        resolve(&self.host, self.quorum_port)
    }

    /// `QuorumPeer.QuorumServer.toString`: `host:qport:eport:role[;chost:cport]`,
    /// IPv6 hosts in brackets.
    fn config_value(&self) -> String {
        let role = if self.observer {
            "observer"
        } else {
            "participant"
        };
        let mut text = format!(
            "{}:{}:{}:{role}",
            bracketed(&self.host),
            self.quorum_port,
            self.election_port
        );
        if let Some((host, port)) = &self.client {
            text.push_str(&format!(";{}:{port}", bracketed(host)));
        }
        text
    }
}

/// The first address `host` (brackets allowed around IPv6) resolves to.
pub fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to nothing")))
}

/// `QuorumServer.delimitedHostString`: an IPv6 literal gets brackets.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Socket settings of the election port (ZooKeeper's names in brackets).
#[derive(Clone, Debug)]
pub struct CnxSettings {
    /// Connecting to a peer (`zookeeper.cnxTimeout`).
    pub connect_timeout: Duration,
    /// Reading the handshake of an accepted connection
    /// (`zookeeper.quorumCnxnTimeoutMs`, else tickTime × syncLimit).
    pub handshake_timeout: Duration,
    /// Bind on 0.0.0.0 instead of our configured host (`quorumListenOnAllIPs`).
    pub listen_on_all_ips: bool,
    /// Tries to bind the election port, 0 = forever (`zookeeper.electionPortBindRetry`).
    pub bind_retries: u32,
    pub bind_retry_interval: Duration,
    /// Quorum TLS (`sslQuorum`, `portUnification`); None: plaintext only.
    pub tls: Option<std::sync::Arc<crate::tls::QuorumTls>>,
}

impl Default for CnxSettings {
    fn default() -> Self {
        CnxSettings {
            connect_timeout: Duration::from_millis(limits::ELECTION_CONNECT_TIMEOUT_MS_DEFAULT),
            // ZooKeeper's sample config: tickTime 2000 × syncLimit 5.
            handshake_timeout: Duration::from_millis(10_000),
            listen_on_all_ips: false,
            bind_retries: limits::ELECTION_PORT_BIND_RETRY_DEFAULT,
            bind_retry_interval: Duration::from_millis(
                limits::ELECTION_PORT_BIND_RETRY_INTERVAL_MS,
            ),
            tls: None,
        }
    }
}

impl CnxSettings {
    pub fn from_config(cfg: &Config) -> CnxSettings {
        let handshake_ms = if cfg.quorum_cnxn_timeout_ms > 0 {
            cfg.quorum_cnxn_timeout_ms
        } else {
            u64::from(cfg.tick_time_ms) * u64::from(cfg.sync_limit_ticks)
        };
        CnxSettings {
            connect_timeout: Duration::from_millis(cfg.election_connect_timeout_ms),
            handshake_timeout: Duration::from_millis(
                handshake_ms.min(limits::ELECTION_SOCKET_TIMEOUT_MS_MAX),
            ),
            listen_on_all_ips: cfg.quorum_listen_on_all_ips,
            bind_retries: cfg.election_port_bind_retry,
            ..CnxSettings::default()
        }
    }
}

/// Why zoo.cfg does not describe an ensemble we can join.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum EnsembleError {
    #[error("no server.N lines: not an ensemble")]
    NoServers,
    #[error("myid is not set")]
    NoMyId,
    #[error("myid {0} has no server.{0} line")]
    NotAMember(Sid),
    #[error("server.{0} appears twice")]
    DuplicateSid(Sid),
    #[error("server id {0} does not fit a ZooKeeper sid")]
    BadSid(u64),
}

/// Who is in the ensemble and which of them vote.
#[derive(Clone, Debug)]
pub struct Ensemble {
    pub my_sid: Sid,
    pub members: BTreeMap<Sid, Member>,
}

impl Ensemble {
    pub fn new(my_sid: Sid, members: Vec<Member>) -> Result<Ensemble, EnsembleError> {
        let mut by_sid = BTreeMap::new();
        for m in members {
            let sid = m.sid;
            if by_sid.insert(sid, m).is_some() {
                return Err(EnsembleError::DuplicateSid(sid));
            }
        }
        if by_sid.is_empty() {
            return Err(EnsembleError::NoServers);
        }
        if !by_sid.contains_key(&my_sid) {
            return Err(EnsembleError::NotAMember(my_sid));
        }
        Ok(Ensemble {
            my_sid,
            members: by_sid,
        })
    }

    pub fn from_config(cfg: &Config) -> Result<Ensemble, EnsembleError> {
        let my_id = cfg.my_id.ok_or(EnsembleError::NoMyId)?;
        let my_sid = Sid::try_from(my_id).map_err(|_| EnsembleError::BadSid(my_id))?;
        let mut members = Vec::with_capacity(cfg.servers.len());
        for s in &cfg.servers {
            members.push(Member {
                sid: Sid::try_from(s.id).map_err(|_| EnsembleError::BadSid(s.id))?,
                host: s.host.clone(),
                quorum_port: s.quorum_port,
                election_port: s.election_port,
                observer: s.observer,
                client: s.client_port.map(|port| {
                    let host = s.client_host.clone().unwrap_or_else(|| "0.0.0.0".into());
                    (host, port)
                }),
            });
        }
        Ensemble::new(my_sid, members)
    }

    pub fn me(&self) -> &Member {
        // `new` checked that my_sid is a member, and members never change.
        &self.members[&self.my_sid]
    }

    pub fn voters(&self) -> BTreeSet<Sid> {
        self.members
            .values()
            .filter(|m| !m.observer)
            .map(|m| m.sid)
            .collect()
    }

    /// Where the election listener binds.
    pub fn listen_addr(&self, settings: &CnxSettings) -> std::io::Result<SocketAddr> {
        let me = self.me();
        if settings.listen_on_all_ips {
            return Ok(SocketAddr::new(
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                me.election_port,
            ));
        }
        me.election_socket_addr()
    }

    /// The address our handshake names: the configured one, resolved, as
    /// `NetUtils.formatInetAddr` prints it (the host text if it does not resolve).
    pub fn handshake_addr(&self) -> ElectionAddr {
        let me = self.me();
        let host = me
            .election_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| {
                me.host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            });
        ElectionAddr {
            host,
            port: me.election_port,
        }
    }

    /// `QuorumMaj.toString()`: one `server.N=...` line per member, then
    /// `version=0` without a newline (static configs are version 0). Java
    /// iterates a HashMap of small Long keys, which is sid order; the
    /// receiver parses the text, so the order does not matter to it anyway.
    pub fn config_text(&self) -> String {
        let mut text = String::new();
        for m in self.members.values() {
            text.push_str(&format!("server.{}={}\n", m.sid, m.config_value()));
        }
        text.push_str("version=0");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(sid: Sid, observer: bool, client: Option<(&str, u16)>) -> Member {
        Member {
            sid,
            host: "127.0.0.1".into(),
            quorum_port: 2887 + sid as u16,
            election_port: 3887 + sid as u16,
            observer,
            client: client.map(|(h, p)| (h.to_string(), p)),
        }
    }

    #[test]
    fn config_text_is_what_quorum_maj_prints() {
        let e = Ensemble::new(
            2,
            vec![
                member(3, true, None),
                member(1, false, Some(("0.0.0.0", 2181))),
                member(2, false, None),
            ],
        )
        .unwrap();
        assert_eq!(
            e.config_text(),
            "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
             server.2=127.0.0.1:2889:3889:participant\n\
             server.3=127.0.0.1:2890:3890:observer\n\
             version=0"
        );
        assert_eq!(e.voters(), [1, 2].into());
        assert_eq!(e.handshake_addr().to_wire_string(), "127.0.0.1:3889");
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let mut m = member(1, false, Some(("::1", 2181)));
        m.host = "::1".into();
        assert_eq!(m.config_value(), "[::1]:2888:3888:participant;[::1]:2181");
    }

    #[test]
    fn from_config_checks_membership() {
        let text = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889;2182\n";
        let mut cfg = Config::parse(text, "zoo.cfg").unwrap();
        assert_eq!(
            Ensemble::from_config(&cfg).unwrap_err(),
            EnsembleError::NoMyId
        );
        cfg.my_id = Some(3);
        assert_eq!(
            Ensemble::from_config(&cfg).unwrap_err(),
            EnsembleError::NotAMember(3)
        );
        cfg.my_id = Some(2);
        let e = Ensemble::from_config(&cfg).unwrap();
        assert!(e
            .config_text()
            .contains("server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n"));
        let settings = CnxSettings::from_config(&cfg);
        assert_eq!(settings.handshake_timeout, Duration::from_millis(2000 * 5));
        assert_eq!(
            e.listen_addr(&settings).unwrap(),
            "127.0.0.1:3889".parse().unwrap()
        );
        let all = CnxSettings {
            listen_on_all_ips: true,
            ..settings
        };
        assert_eq!(
            e.listen_addr(&all).unwrap(),
            "0.0.0.0:3889".parse().unwrap()
        );
        let dup = vec![member(1, false, None), member(1, false, None)];
        assert_eq!(
            Ensemble::new(1, dup).unwrap_err(),
            EnsembleError::DuplicateSid(1)
        );
    }
}
