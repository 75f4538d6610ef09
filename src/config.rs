//! zoo.cfg and `dataDir/myid` parsing and validation.
//!
//! The file format is ZooKeeper's: `key=value` lines, `#` comments, blank lines.
//! Keys we implement are parsed and range-checked; keys ZooKeeper knows but we
//! do not use yet are accepted with one warning each (real configs carry SSL,
//! SASL and JVM keys); a line that is not `key=value`, or a bad value for a key
//! we use, stops startup with the file, line number and reason.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::limits;
use crate::tls::{QuorumTlsConfig, TlsConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {reason}")]
    Line {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
}

/// Which four-letter words may run (`4lw.commands.whitelist`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    All,
    Only(HashSet<String>),
}

impl FourLetterWhitelist {
    pub fn allows(&self, word: &str) -> bool {
        match self {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(set) => set.contains(word),
        }
    }
}

/// ZooKeeper's Prometheus provider class: naming it turns the endpoint on.
pub const PROMETHEUS_PROVIDER_CLASS: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// ZooKeeper's built-in providers that export nothing over HTTP (the default).
const NON_HTTP_PROVIDER_CLASSES: &[&str] = &[
    "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
    "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
];

/// The Prometheus endpoint: on when `metricsProvider.className` names
/// ZooKeeper's Prometheus provider; listens on `metricsProvider.httpHost`
/// and `metricsProvider.httpPort` (ZooKeeper's defaults 0.0.0.0:7000).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub http_address: IpAddr,
    pub http_port: u16,
    /// `metricsProvider.exportJvmInfo`: accepted; there is no JVM, so it
    /// adds nothing to the output.
    pub export_jvm_info: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: false,
            http_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http_port: 7000,
            export_jvm_info: true,
        }
    }
}

/// ZooKeeper 3.5+'s HTTP AdminServer (`admin.*`, also spelled
/// `zookeeper.admin.*` as ZooKeeper reads them as system properties): on by
/// default, at 0.0.0.0:8080 under `/commands`, as ZooKeeper's JettyAdminServer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// `admin.enableServer`.
    pub enabled: bool,
    /// `admin.serverAddress`.
    pub address: IpAddr,
    /// `admin.serverPort`.
    pub port: u16,
    /// `admin.commandURL`: the path the command list is served under.
    pub command_url: String,
    /// `admin.idleTimeout`, ms: how long one HTTP connection may take.
    pub idle_timeout_ms: u64,
    /// `admin.snapshot.enabled`: the `snapshot` command (3.9).
    pub snapshot_enabled: bool,
    /// `admin.restore.enabled`: the `restore` command (3.9).
    pub restore_enabled: bool,
    /// `admin.rateLimiterIntervalInMS`: one `snapshot` or `restore` per
    /// interval (ZooKeeper 3.9 reads the interval in microseconds for
    /// `snapshot`, so its five-minute default lets one through per 300 ms;
    /// Ferrokeeper does as it does).
    pub rate_limiter_interval_ms: u64,
    /// `serializeLastProcessedZxid.enabled`: 3.9 refuses `snapshot` and
    /// `restore` without it (their files carry the zxid in it).
    pub serialize_last_processed_zxid: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8080,
            command_url: "/commands".to_string(),
            idle_timeout_ms: 30_000,
            snapshot_enabled: true,
            restore_enabled: true,
            rate_limiter_interval_ms: 300_000,
            serialize_last_processed_zxid: true,
        }
    }
}

/// One `server.N=host:quorumPort:electionPort[:role][;[addr:]clientPort]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    pub client_port: Option<u16>,
    /// Host of the `;host:port` client part; ZooKeeper means 0.0.0.0 when
    /// only a port is given (`QuorumPeer.QuorumServer`).
    pub client_host: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The config file's text as read at start (the AdminServer's
    /// `initial_configuration`); None when not loaded from a file.
    pub initial_config: Option<String>,
    pub tick_time_ms: u32,
    pub init_limit_ticks: u32,
    pub sync_limit_ticks: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    pub client_address: IpAddr,
    /// Connections per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub global_outstanding_limit: u32,
    pub snap_count: u64,
    pub pre_alloc_size_kb: u64,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub force_sync: bool,
    /// `jute.maxbuffer`: largest frame accepted from a client.
    pub frame_bytes_max: usize,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub extended_types_enabled: bool,
    /// `enforceQuota` (ZooKeeper's system property `zookeeper.enforceQuota`):
    /// hard quotas refuse writes, soft ones are logged.
    pub enforce_quota: bool,
    /// `readonlymode.enabled` (zoo.cfg, or ZooKeeper's `-Dreadonlymode.enabled`
    /// in `SERVER_JVMFLAGS`/`JVMFLAGS`): an ensemble member cut off from its
    /// quorum serves reads to clients that allow read-only servers.
    pub read_only_mode: bool,
    /// `DigestAuthenticationProvider.superDigest` = `super:<base64 sha1>`.
    pub super_digest: Option<String>,
    /// Container/TTL reaper period (`znode.container.checkIntervalMs`).
    pub container_check_interval_ms: u64,
    /// Shard executors serving clients (`ferrokeeper.shards`); 0 = the
    /// default for the machine ([`default_shards`]).
    pub shard_count: usize,
    /// Requests one connection may have in flight (`ferrokeeper.maxOutstandingPerConnection`).
    pub outstanding_per_connection_max: u32,
    /// `ferrokeeper.sessionPasswords=zookeeper`: an ensemble uses ZooKeeper's
    /// password derivation, which Apache servers in a mixed ensemble need;
    /// the default (`keyed`) keeps them unguessable in a Ferrokeeper-only one.
    pub zookeeper_session_passwords: bool,
    /// Watches one connection may hold (`ferrokeeper.maxWatchesPerConnection`).
    pub watches_per_connection_max: usize,
    /// Server-wide bound on bytes held for clients
    /// (`ferrokeeper.maxClientBufferBytes`); 0 = derived from the machine's
    /// memory ([`default_client_buffer_bytes`]).
    pub client_buffer_bytes_max: usize,
    /// Most requests in one log batch (`zookeeper.maxBatchSize`).
    pub batch_requests_max: usize,
    /// Most txn bytes in one log batch (`ferrokeeper.maxBatchBytes`).
    pub batch_bytes_max: usize,
    /// How long a batch waits for more requests before it is logged
    /// (`zookeeper.flushDelay`, ms; 0 = log as soon as the queue is drained).
    pub flush_delay_ms: u64,
    /// Prometheus `/metrics` endpoint (`metricsProvider.*`).
    pub metrics: MetricsConfig,
    /// HTTP AdminServer (`admin.*`).
    pub admin: AdminConfig,
    /// Client TLS (`secureClientPort`, `ssl.*`).
    pub tls: TlsConfig,
    /// Quorum TLS (`sslQuorum`, `ssl.quorum.*`, `portUnification`).
    pub quorum_tls: QuorumTlsConfig,
    pub servers: Vec<ServerSpec>,
    pub my_id: Option<u64>,
    /// `quorumListenOnAllIPs`: the election port binds 0.0.0.0, not the
    /// configured host.
    pub quorum_listen_on_all_ips: bool,
    /// `zookeeper.cnxTimeout` (ms): connecting to a peer's election port.
    pub election_connect_timeout_ms: u64,
    /// `zookeeper.quorumCnxnTimeoutMs`: reading an election handshake; 0 =
    /// tickTime × syncLimit, as ZooKeeper does (`QuorumPeer.createCnxnManager`).
    pub quorum_cnxn_timeout_ms: u64,
    /// `zookeeper.electionPortBindRetry`: tries to bind the election port, 0 = forever.
    pub election_port_bind_retry: u32,
    /// One line per accepted-but-unused key, logged at startup.
    pub warnings: Vec<String>,
}

impl Default for Config {
    /// The embedded standalone default: 127.0.0.1:2181, data under ./data.
    fn default() -> Self {
        let tick_time_ms = 2000;
        Config {
            initial_config: None,
            tick_time_ms,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            data_dir: PathBuf::from("data"),
            data_log_dir: PathBuf::from("data"),
            client_port: 2181,
            client_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_client_cnxns: 60,
            min_session_timeout_ms: 2 * tick_time_ms,
            max_session_timeout_ms: 20 * tick_time_ms,
            global_outstanding_limit: 1000,
            snap_count: 100_000,
            pre_alloc_size_kb: 65536,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            force_sync: true,
            frame_bytes_max: limits::FRAME_BYTES_MAX_DEFAULT,
            four_letter_whitelist: FourLetterWhitelist::Only(["srvr".to_string()].into()),
            extended_types_enabled: false,
            enforce_quota: false,
            read_only_mode: false,
            super_digest: None,
            container_check_interval_ms: 60_000,
            shard_count: 0,
            zookeeper_session_passwords: false,
            outstanding_per_connection_max: limits::OUTSTANDING_PER_CONNECTION_DEFAULT,
            watches_per_connection_max: limits::WATCHES_PER_CONNECTION_DEFAULT,
            client_buffer_bytes_max: 0,
            batch_requests_max: limits::BATCH_REQUESTS_MAX,
            batch_bytes_max: limits::BATCH_BYTES_MAX,
            flush_delay_ms: 0,
            metrics: MetricsConfig::default(),
            // Without a config file everything listens on loopback only.
            admin: AdminConfig {
                address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                ..AdminConfig::default()
            },
            tls: TlsConfig::default(),
            quorum_tls: QuorumTlsConfig::default(),
            servers: Vec::new(),
            my_id: None,
            quorum_listen_on_all_ips: false,
            election_connect_timeout_ms: limits::quorum::ELECTION_CONNECT_TIMEOUT_MS_DEFAULT,
            quorum_cnxn_timeout_ms: 0,
            election_port_bind_retry: limits::quorum::ELECTION_PORT_BIND_RETRY_DEFAULT,
            warnings: Vec::new(),
        }
    }
}

/// Environment variables whose `-D` flags are read (zkServer.sh passes both
/// to the server's JVM, `SERVER_JVMFLAGS` last, so it wins).
pub(crate) const JVM_FLAGS_VARS: &[&str] = &["JVMFLAGS", "SERVER_JVMFLAGS"];

/// Keys ZooKeeper knows that we accept and ignore (with one warning each).
const IGNORED_KEYS: &[&str] = &[
    "clientCnxnSocket",
    "standaloneEnabled",
    "reconfigEnabled",
    "peerType",
    "electionAlg",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "maxCnxns",
    "skipACL",
    "syncEnabled",
    "dynamicConfigFile",
    "leaderServes",
    "fsync.warningthresholdms",
    "connectToLearnerMasterLimit",
    "multiAddress.enabled",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "commitLogCount",
];

/// Key prefixes ZooKeeper knows that we accept and ignore.
const IGNORED_PREFIXES: &[&str] = &[
    "ssl.",
    "admin.",
    "authProvider.",
    "metricsProvider.",
    "quorum.",
    "zookeeper.",
    "sasl",
    "kerberos.",
    "group.",
    "weight.",
    "audit.",
    "jvm.",
];

impl Config {
    /// Reads `path` and, when it names servers, `dataDir/myid`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let mut cfg = Config::parse(&text, &file)?;
        cfg.initial_config = Some(text);
        for var in JVM_FLAGS_VARS {
            if let Ok(flags) = std::env::var(var) {
                cfg.apply_jvm_flags(&flags, var)?;
            }
        }
        cfg.load_my_id()?;
        Ok(cfg)
    }

    /// The `-Dkey=value` system properties of a JVM command line (as users of
    /// zkServer.sh set them in `SERVER_JVMFLAGS`) that name a key we read;
    /// other flags are the JVM's own and are skipped.
    pub fn apply_jvm_flags(&mut self, flags: &str, var: &str) -> Result<(), ConfigError> {
        for flag in flags.split_whitespace() {
            let Some((key, value)) = flag.strip_prefix("-D").and_then(|kv| kv.split_once('='))
            else {
                continue;
            };
            // ZooKeeper reads the quorum's TLS keys as system properties
            // named `zookeeper.ssl.quorum.*` (QuorumX509Util's prefix).
            let quorum_key = key.strip_prefix("zookeeper.").unwrap_or(key);
            if let Some(applied) = self.quorum_tls.apply(quorum_key, value) {
                applied.map_err(|reason| ConfigError::File {
                    file: format!("${var}"),
                    reason: format!("-D{key}: {reason}"),
                })?;
                continue;
            }
            if key == "readonlymode.enabled" {
                self.read_only_mode = parse_bool(value).map_err(|reason| ConfigError::File {
                    file: format!("${var}"),
                    reason: format!("{flag}: {reason}"),
                })?;
            }
        }
        Ok(())
    }

    /// Parses zoo.cfg text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            client_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            admin: AdminConfig::default(),
            ..Config::default()
        };
        let mut saw = Seen::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let fail = |reason: String| ConfigError::Line {
                file: file.to_string(),
                line: index + 1,
                reason,
            };
            let (key, value) = split_line(line).map_err(fail)?;
            cfg.apply_key(key, value, &mut saw).map_err(fail)?;
        }
        cfg.finish(&saw, file)?;
        Ok(cfg)
    }

    fn apply_key(&mut self, key: &str, value: &str, saw: &mut Seen) -> Result<(), String> {
        // ZooKeeper turns unknown keys into `zookeeper.<key>` system properties, so
        // deployments write some keys with and some without that prefix.
        let key = match key.strip_prefix("zookeeper.") {
            Some(rest) if is_known_key(rest) => rest,
            _ => key,
        };
        if let Some(applied) = self.tls.apply(key, value) {
            return applied;
        }
        if let Some(applied) = self.quorum_tls.apply(key, value) {
            return applied;
        }
        match key {
            "tickTime" => self.tick_time_ms = parse_range(value, 1, 1_000_000)?,
            "initLimit" => self.init_limit_ticks = parse_range(value, 1, 1_000_000)?,
            "syncLimit" => self.sync_limit_ticks = parse_range(value, 1, 1_000_000)?,
            "dataDir" => self.data_dir = parse_dir(value)?,
            "dataLogDir" => {
                self.data_log_dir = parse_dir(value)?;
                saw.data_log_dir = true;
            }
            "clientPort" => self.client_port = parse_range(value, 1, 65535)?,
            "clientPortAddress" => {
                self.client_address = value
                    .parse()
                    .map_err(|_| format!("clientPortAddress: '{value}' is not an IP address"))?
            }
            "maxClientCnxns" => self.max_client_cnxns = parse_range(value, 0, u32::MAX)?,
            "minSessionTimeout" => {
                self.min_session_timeout_ms = parse_range(value, 1, i32::MAX as u32)?;
                saw.min_session = true;
            }
            "maxSessionTimeout" => {
                self.max_session_timeout_ms = parse_range(value, 1, i32::MAX as u32)?;
                saw.max_session = true;
            }
            "globalOutstandingLimit" => {
                self.global_outstanding_limit =
                    parse_range(value, 1, limits::GLOBAL_OUTSTANDING_CAP)?
            }
            "snapCount" => self.snap_count = parse_range(value, 2, u64::MAX)?,
            // Recovery reads a whole segment into memory: preallocation beyond
            // a segment's size bound gains nothing and would inflate it.
            "preAllocSize" => {
                self.pre_alloc_size_kb =
                    parse_range(value, 1, limits::storage::SEGMENT_BYTES_MAX_DEFAULT / 1024)?
            }
            "autopurge.snapRetainCount" => {
                // ZooKeeper raises values below 3 to 3 (with a warning).
                self.autopurge_snap_retain_count = parse_range::<u32>(value, 0, 1 << 20)?.max(3)
            }
            "autopurge.purgeInterval" => {
                self.autopurge_purge_interval_hours = parse_range(value, 0, 1 << 20)?
            }
            "forceSync" => self.force_sync = parse_yes_no(value)?,
            "jute.maxbuffer" => {
                self.frame_bytes_max =
                    parse_range(value, 1024u64, limits::FRAME_BYTES_MAX_CAP as u64)? as usize
            }
            "4lw.commands.whitelist" => self.four_letter_whitelist = parse_whitelist(value),
            "extendedTypesEnabled" => self.extended_types_enabled = parse_bool(value)?,
            "enforceQuota" => self.enforce_quota = parse_bool(value)?,
            "readonlymode.enabled" => self.read_only_mode = parse_bool(value)?,
            "DigestAuthenticationProvider.superDigest" => {
                if !value.contains(':') {
                    return Err("superDigest must be 'user:base64digest'".to_string());
                }
                self.super_digest = Some(value.to_string())
            }
            "znode.container.checkIntervalMs" => {
                self.container_check_interval_ms = parse_range(value, 1, u64::MAX)?
            }
            "ferrokeeper.sessionPasswords" => {
                self.zookeeper_session_passwords = match value {
                    "zookeeper" => true,
                    "keyed" => false,
                    _ => return Err("expected keyed or zookeeper".to_string()),
                }
            }
            "ferrokeeper.shards" => {
                self.shard_count = parse_range(value, 0, limits::SHARDS_MAX as u64)? as usize
            }
            "ferrokeeper.maxOutstandingPerConnection" => {
                self.outstanding_per_connection_max =
                    parse_range(value, 1, limits::OUTSTANDING_PER_CONNECTION_CAP)?
            }
            "ferrokeeper.maxWatchesPerConnection" => {
                self.watches_per_connection_max =
                    parse_range(value, 1u64, limits::WATCHES_PER_CONNECTION_CAP as u64)? as usize
            }
            "ferrokeeper.maxClientBufferBytes" => {
                self.client_buffer_bytes_max = parse_range(
                    value,
                    limits::CLIENT_BUFFER_BYTES_MIN as u64,
                    limits::CLIENT_BUFFER_BYTES_CAP as u64,
                )? as usize
            }
            "maxBatchSize" => {
                self.batch_requests_max =
                    parse_range(value, 1u64, limits::BATCH_REQUESTS_CAP as u64)? as usize
            }
            "ferrokeeper.maxBatchBytes" => {
                self.batch_bytes_max =
                    parse_range(value, 1024u64, limits::BATCH_BYTES_CAP as u64)? as usize
            }
            "flushDelay" => {
                self.flush_delay_ms = parse_range(value, 0, limits::FLUSH_DELAY_MS_MAX)?
            }
            "metricsProvider.className" => self.metrics.enabled = parse_metrics_class(value)?,
            "metricsProvider.httpHost" => self.metrics.http_address = parse_host(key, value)?,
            "metricsProvider.httpPort" => self.metrics.http_port = parse_range(value, 1, 65535)?,
            "metricsProvider.exportJvmInfo" => self.metrics.export_jvm_info = parse_bool(value)?,
            "admin.enableServer" => self.admin.enabled = parse_bool(value)?,
            "admin.serverAddress" => self.admin.address = parse_host(key, value)?,
            "admin.serverPort" => self.admin.port = parse_range(value, 1, 65535)?,
            "admin.commandURL" => self.admin.command_url = parse_command_url(value)?,
            "admin.idleTimeout" => {
                self.admin.idle_timeout_ms =
                    parse_range(value, 1, limits::admin::IDLE_TIMEOUT_MS_MAX)?
            }
            "admin.snapshot.enabled" => self.admin.snapshot_enabled = parse_bool(value)?,
            "admin.restore.enabled" => self.admin.restore_enabled = parse_bool(value)?,
            "admin.rateLimiterIntervalInMS" => {
                self.admin.rate_limiter_interval_ms = parse_range(value, 0, i32::MAX as u64)?
            }
            "serializeLastProcessedZxid.enabled" => {
                self.admin.serialize_last_processed_zxid = parse_bool(value)?
            }
            "quorumListenOnAllIPs" => self.quorum_listen_on_all_ips = parse_bool(value)?,
            "cnxTimeout" => {
                self.election_connect_timeout_ms =
                    parse_range(value, 1, limits::quorum::ELECTION_SOCKET_TIMEOUT_MS_MAX)?
            }
            "quorumCnxnTimeoutMs" => {
                self.quorum_cnxn_timeout_ms =
                    parse_range(value, 0, limits::quorum::ELECTION_SOCKET_TIMEOUT_MS_MAX)?
            }
            "electionPortBindRetry" => {
                self.election_port_bind_retry = parse_range(value, 0, u32::MAX)?
            }
            _ if key.starts_with("server.") => self.servers.push(parse_server(key, value)?),
            _ => self.warn_unused(key),
        }
        Ok(())
    }

    fn warn_unused(&mut self, key: &str) {
        let known =
            IGNORED_KEYS.contains(&key) || IGNORED_PREFIXES.iter().any(|p| key.starts_with(p));
        let what = if known {
            "is not supported yet; ignored"
        } else {
            "is not a key Ferrokeeper knows; ignored (ZooKeeper would make it a system property)"
        };
        self.warnings.push(format!("config key '{key}' {what}"));
    }

    fn finish(&mut self, saw: &Seen, file: &str) -> Result<(), ConfigError> {
        if !saw.data_log_dir {
            self.data_log_dir = self.data_dir.clone();
        }
        if !saw.min_session {
            self.min_session_timeout_ms = 2 * self.tick_time_ms;
        }
        if !saw.max_session {
            self.max_session_timeout_ms = 20 * self.tick_time_ms;
        }
        self.check_tls(file)?;
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(ConfigError::File {
                file: file.to_string(),
                reason: format!(
                    "minSessionTimeout {} must not be larger than maxSessionTimeout {}",
                    self.min_session_timeout_ms, self.max_session_timeout_ms
                ),
            });
        }
        Ok(())
    }

    /// A secure port needs a key store, and a port of its own.
    fn check_tls(&self, file: &str) -> Result<(), ConfigError> {
        let Some(port) = self.tls.secure_client_port else {
            return Ok(());
        };
        let fail = |reason: String| ConfigError::File {
            file: file.to_string(),
            reason,
        };
        if self.tls.key_store.location.is_none() {
            return Err(fail(format!(
                "secureClientPort={port} needs ssl.keyStore.location (the server's certificate)"
            )));
        }
        let secure = self.secure_client_address();
        let overlaps = secure == self.client_address
            || secure.is_unspecified()
            || self.client_address.is_unspecified();
        if port == self.client_port && overlaps {
            return Err(fail(format!(
                "secureClientPort {port} must differ from clientPort"
            )));
        }
        Ok(())
    }

    /// Where the TLS listener binds: `secureClientPortAddress`, else (as in
    /// ZooKeeper) the wildcard address.
    pub fn secure_client_address(&self) -> IpAddr {
        self.tls
            .secure_client_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn load_my_id(&mut self) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Ok(());
        }
        let path = self.data_dir.join("myid");
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            file: file.clone(),
            reason: format!("cannot read myid: {e}"),
        })?;
        let id = text.trim().parse::<u64>().map_err(|_| ConfigError::File {
            file,
            reason: format!("myid '{}' is not a number", text.trim()),
        })?;
        self.my_id = Some(id);
        Ok(())
    }

    /// Shard executors to start: the configured count, or the default for
    /// this machine's cores ([`default_shards`]).
    /// The server-wide client buffer bound in force (configured or default).
    pub fn client_buffer_bytes(&self) -> usize {
        if self.client_buffer_bytes_max == 0 {
            default_client_buffer_bytes(memory_bytes())
        } else {
            self.client_buffer_bytes_max
        }
    }

    pub fn shards(&self) -> usize {
        let count = if self.shard_count == 0 {
            default_shards(std::thread::available_parallelism().map_or(1, |n| n.get()))
        } else {
            self.shard_count
        };
        count.clamp(1, limits::SHARDS_MAX)
    }

    /// The negotiated session timeout for a client's request (ZooKeeper clamps).
    pub fn negotiate_timeout_ms(&self, requested_ms: i32) -> i32 {
        let min = self.min_session_timeout_ms as i64;
        let max = self.max_session_timeout_ms as i64;
        (requested_ms as i64).clamp(min, max) as i32
    }
}

#[derive(Default)]
struct Seen {
    data_log_dir: bool,
    min_session: bool,
    max_session: bool,
}

fn is_known_key(key: &str) -> bool {
    matches!(
        key,
        "DigestAuthenticationProvider.superDigest"
            | "extendedTypesEnabled"
            | "enforceQuota"
            | "jute.maxbuffer"
            | "maxBatchSize"
            | "flushDelay"
            | "admin.enableServer"
            | "admin.serverAddress"
            | "admin.serverPort"
            | "admin.commandURL"
            | "admin.idleTimeout"
            | "admin.snapshot.enabled"
            | "admin.restore.enabled"
            | "admin.rateLimiterIntervalInMS"
            | "serializeLastProcessedZxid.enabled"
            | "cnxTimeout"
            | "quorumCnxnTimeoutMs"
            | "electionPortBindRetry"
    ) || crate::tls::settings::is_tls_key(key)
        || crate::tls::quorum_settings::is_quorum_tls_key(key)
}

fn split_line(line: &str) -> Result<(&str, &str), String> {
    let (key, value) = line
        .split_once('=')
        .ok_or_else(|| format!("expected 'key=value', found '{line}'"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("empty key in '{line}'"));
    }
    Ok((key, value.trim()))
}

fn parse_range<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: Into<i128> + TryFrom<i128> + std::fmt::Display + Copy,
{
    let n: i128 = value
        .parse()
        .map_err(|_| format!("'{value}' is not a whole number"))?;
    if n < min.into() || n > max.into() {
        return Err(format!("{value} is out of range [{min}, {max}]"));
    }
    T::try_from(n).map_err(|_| format!("{value} is out of range [{min}, {max}]"))
}

fn parse_dir(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("directory must not be empty".to_string());
    }
    Ok(PathBuf::from(value))
}

/// True for ZooKeeper's Prometheus provider, false for its built-in ones;
/// any other class is an error, as in ZooKeeper (QuorumPeerConfig fails
/// with "metrics provider class was not found" and the server does not start).
fn parse_metrics_class(value: &str) -> Result<bool, String> {
    if value == PROMETHEUS_PROVIDER_CLASS {
        Ok(true)
    } else if NON_HTTP_PROVIDER_CLASSES.contains(&value) {
        Ok(false)
    } else {
        Err(format!(
            "metricsProvider.className: '{value}' is not a metrics provider Ferrokeeper has \
             (it has {PROMETHEUS_PROVIDER_CLASS})"
        ))
    }
}

/// An IP address, or a host name resolved once at startup (ZooKeeper hands
/// the name to Jetty, which resolves it when it binds).
fn parse_host(key: &str, value: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(ip) = value.parse() {
        return Ok(ip);
    }
    (value, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| addr.ip())
        .ok_or_else(|| format!("{key}: '{value}' is not an IP address or a known host name"))
}

/// A path starting with `/`, without a trailing `/` (Jetty maps the servlet
/// at `<url>/*`), query or fragment.
fn parse_command_url(value: &str) -> Result<String, String> {
    let url = value.trim_end_matches('/');
    if !value.starts_with('/') || url.contains(['?', '#', ' ']) {
        return Err(format!(
            "admin.commandURL: '{value}' is not a path starting with '/'"
        ));
    }
    Ok(url.to_string())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("'{value}' is not true or false")),
    }
}

fn parse_yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("'{value}' is not yes or no")),
    }
}

fn parse_whitelist(value: &str) -> FourLetterWhitelist {
    let words: HashSet<String> = value
        .split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect();
    if words.contains("*") {
        FourLetterWhitelist::All
    } else {
        FourLetterWhitelist::Only(words)
    }
}

fn parse_server(key: &str, value: &str) -> Result<ServerSpec, String> {
    let id: u64 = key["server.".len()..]
        .parse()
        .map_err(|_| format!("'{key}': server id must be a number"))?;
    let (peer, client) = match value.split_once(';') {
        Some((p, c)) => (p, Some(c)),
        None => (value, None),
    };
    let parts: Vec<&str> = peer.split(':').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return Err(format!(
            "'{key}={value}': expected host:quorumPort:electionPort[:participant|observer]"
        ));
    }
    let port = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("'{key}': '{s}' is not a port"))
    };
    let observer = match parts.get(3) {
        None | Some(&"participant") => false,
        Some(&"observer") => true,
        Some(other) => return Err(format!("'{key}': unknown role '{other}'")),
    };
    let (client_host, client_port) = match client.map(|c| c.rsplit_once(':')) {
        Some(Some((host, p))) => (Some(host.to_string()), Some(port(p)?)),
        Some(None) => (None, client.map(port).transpose()?),
        None => (None, None),
    };
    Ok(ServerSpec {
        id,
        host: parts[0].to_string(),
        quorum_port: port(parts[1])?,
        election_port: port(parts[2])?,
        observer,
        client_port,
        client_host,
    })
}

/// One shard per core, except on machines with at most
/// [`limits::SMALL_MACHINE_CORES`] cores: there the pipeline and log threads
/// need CPU too, and a second shard only adds contention. Measured on 2
/// cores (docs/performance.md, "Shard count"): 1 shard served 12% more reads
/// with a p99 of 0.35 ms instead of 2.0 ms, and 90/10 7% more; setData was
/// within the noise of 2 shards.
pub fn default_shards(cores: usize) -> usize {
    if cores <= limits::SMALL_MACHINE_CORES {
        1
    } else {
        cores
    }
}

/// 1/[`limits::CLIENT_BUFFER_MEMORY_DIVISOR`] of the memory the server may
/// use, within [`limits::CLIENT_BUFFER_BYTES_DEFAULT_MIN`] and `_MAX`: on a
/// 24 GiB machine 96 MiB, enough for every client to have megabytes of
/// replies in flight, small beside the tree (a million znodes take ~400 MiB).
pub fn default_client_buffer_bytes(memory_bytes: u64) -> usize {
    let share = memory_bytes / limits::CLIENT_BUFFER_MEMORY_DIVISOR;
    (share.min(usize::MAX as u64) as usize).clamp(
        limits::CLIENT_BUFFER_BYTES_DEFAULT_MIN,
        limits::CLIENT_BUFFER_BYTES_DEFAULT_MAX,
    )
}

/// Physical memory, or the cgroup v2 memory limit when that is lower
/// (a server in a container must size itself by the container).
fn memory_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions; a failure returns -1.
    let (pages, page_bytes) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let physical = if pages > 0 && page_bytes > 0 {
        pages as u64 * page_bytes as u64
    } else {
        0
    };
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match cgroup {
        Some(limit) if limit > 0 && (physical == 0 || limit < physical) => limit,
        _ => physical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_machines_default_to_one_shard_larger_ones_to_one_per_core() {
        assert_eq!(default_shards(1), 1);
        assert_eq!(default_shards(2), 1);
        assert_eq!(default_shards(3), 3);
        assert_eq!(default_shards(16), 16);
        let explicit = Config::parse("dataDir=/tmp/zk\nferrokeeper.shards=2\n", "zoo.cfg").unwrap();
        assert_eq!(explicit.shards(), 2, "a configured count wins");
    }

    #[test]
    fn client_buffer_bound_defaults_to_a_share_of_memory_within_bounds() {
        assert_eq!(default_client_buffer_bytes(24 << 30), 96 << 20);
        assert_eq!(default_client_buffer_bytes(1 << 30), 32 << 20, "floor");
        assert_eq!(default_client_buffer_bytes(1 << 40), 1 << 30, "ceiling");
        let cfg = Config::parse("dataDir=/tmp/zk\n", "zoo.cfg").unwrap();
        assert!(cfg.client_buffer_bytes() >= limits::CLIENT_BUFFER_BYTES_DEFAULT_MIN);
        let set = Config::parse(
            "dataDir=/tmp/zk\nferrokeeper.maxClientBufferBytes=67108864\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(
            set.client_buffer_bytes(),
            64 << 20,
            "a configured bound wins"
        );
        let err = Config::parse(
            "dataDir=/tmp/zk\nferrokeeper.maxClientBufferBytes=1000\n",
            "zoo.cfg",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("zoo.cfg") && err.contains("out of range"),
            "{err}"
        );
    }

    #[test]
    fn stock_config_parses_with_defaults_from_tick_time() {
        let cfg = Config::parse(
            "# comment\ntickTime=1000\ndataDir=/tmp/zk\nclientPort=2182\n\n4lw.commands.whitelist=*\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(cfg.tick_time_ms, 1000);
        assert_eq!(cfg.min_session_timeout_ms, 2000);
        assert_eq!(cfg.max_session_timeout_ms, 20000);
        assert_eq!(cfg.data_log_dir, PathBuf::from("/tmp/zk"));
        assert_eq!(cfg.client_port, 2182);
        assert!(cfg.four_letter_whitelist.allows("mntr"));
        assert!(cfg.warnings.is_empty());
    }

    #[test]
    fn malformed_line_names_file_line_and_reason() {
        let err = Config::parse("tickTime=2000\nthis is not a pair\n", "my.cfg").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("my.cfg:2:"), "{text}");
        assert!(text.contains("key=value"), "{text}");
        let err = Config::parse("clientPort=99999\n", "my.cfg").unwrap_err();
        assert!(
            err.to_string().contains("my.cfg:1: 99999 is out of range"),
            "{err}"
        );
        let err = Config::parse("preAllocSize=65537\n", "my.cfg").unwrap_err();
        assert!(
            err.to_string().contains("my.cfg:1: 65537 is out of range"),
            "{err}"
        );
    }

    #[test]
    fn tls_keys_are_read_without_warnings() {
        let cfg = Config::parse(
            "clientPort=2181\nsecureClientPort=2281\nssl.keyStore.location=/k.p12\n\
             zookeeper.ssl.clientAuth=want\nserverCnxnFactory=org.Foo\nclient.secure=true\n",
            "zoo.cfg",
        )
        .unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(cfg.tls.secure_client_port, Some(2281));
        assert_eq!(cfg.tls.client_auth, crate::tls::ClientAuth::Want);
        assert_eq!(
            cfg.secure_client_address(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn secure_port_needs_a_key_store_and_its_own_port() {
        let err = Config::parse("secureClientPort=2281\n", "zoo.cfg").unwrap_err();
        assert!(err.to_string().contains("ssl.keyStore.location"), "{err}");
        let err = Config::parse(
            "clientPort=2281\nsecureClientPort=2281\nssl.keyStore.location=/k.pem\n",
            "zoo.cfg",
        )
        .unwrap_err();
        assert!(err.to_string().contains("must differ"), "{err}");
        let err = Config::parse("ssl.clientAuth=sometimes\n", "zoo.cfg").unwrap_err();
        assert!(
            err.to_string().contains("zoo.cfg:1: ssl.clientAuth"),
            "{err}"
        );
    }

    #[test]
    fn tls_preset_uses_only_keys_we_implement() {
        let text = include_str!("../tuning/zoo-tls.cfg");
        let cfg = Config::parse(text, "tuning/zoo-tls.cfg").unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(cfg.tls.secure_client_port, Some(2281));
    }

    #[test]
    fn quorum_tls_keys_from_zoo_cfg_with_or_without_prefix_and_from_jvm_flags() {
        let mut cfg = Config::parse(
            "sslQuorum=true\nzookeeper.ssl.quorum.keyStore.location=/q/k.p12\n\
             ssl.quorum.trustStore.location=/q/ca.pem\nportUnification=true\n\
             zookeeper.ssl.quorum.hostnameVerification=false\n",
            "zoo.cfg",
        )
        .unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert!(cfg.quorum_tls.enabled && cfg.quorum_tls.port_unification);
        assert!(!cfg.quorum_tls.tls.hostname_verification);
        assert_eq!(
            cfg.quorum_tls.tls.key_store.location,
            Some(PathBuf::from("/q/k.p12"))
        );
        // The client keys stay the client's.
        assert!(cfg.tls.key_store.location.is_none());
        cfg.apply_jvm_flags(
            "-Xmx1g -Dzookeeper.ssl.quorum.keyStore.password=pw -Dzookeeper.sslQuorumReloadCertFiles=true",
            "SERVER_JVMFLAGS",
        )
        .unwrap();
        assert_eq!(cfg.quorum_tls.tls.key_store.password, "pw");
        assert!(cfg.quorum_tls.tls.cert_reload);
        let err = cfg
            .apply_jvm_flags("-Dzookeeper.ssl.quorum.clientAuth=maybe", "SERVER_JVMFLAGS")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssl.quorum.clientAuth"), "{err}");
        let err = Config::parse("sslQuorum=yes please\n", "zoo.cfg").unwrap_err();
        assert!(err.to_string().contains("zoo.cfg:1: sslQuorum"), "{err}");
    }

    #[test]
    fn tls_ensemble_preset_uses_only_keys_we_implement() {
        let text = include_str!("../tuning/ensemble-3-tls.cfg");
        let cfg = Config::parse(text, "tuning/ensemble-3-tls.cfg").unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert!(cfg.quorum_tls.enabled && cfg.quorum_tls.tls.cert_reload);
        assert_eq!(cfg.servers.len(), 3);
    }

    #[test]
    fn unused_keys_are_accepted_with_one_warning_each() {
        let cfg = Config::parse(
            "ssl.crl=true\nquorum.auth.enableSasl=true\nadmin.httpVersion=11\nmyCustomKey=1\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(cfg.warnings.len(), 4);
        assert!(cfg.warnings[3].contains("myCustomKey"));
    }

    #[test]
    fn admin_keys_are_validated_with_or_without_the_zookeeper_prefix() {
        let cfg = Config::parse("", "zoo.cfg").unwrap();
        assert_eq!(cfg.admin, AdminConfig::default());
        assert!(cfg.admin.enabled, "on by default, as in ZooKeeper");
        let text = "admin.enableServer=false\nzookeeper.admin.serverPort=9090\n\
                    admin.serverAddress=127.0.0.1\nadmin.commandURL=/cmds/\nadmin.idleTimeout=5000\n\
                    admin.snapshot.enabled=false\nzookeeper.admin.restore.enabled=false\n\
                    admin.rateLimiterIntervalInMS=1000\nserializeLastProcessedZxid.enabled=false\n";
        let cfg = Config::parse(text, "zoo.cfg").unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        let want = AdminConfig {
            enabled: false,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9090,
            command_url: "/cmds".to_string(),
            idle_timeout_ms: 5000,
            snapshot_enabled: false,
            restore_enabled: false,
            rate_limiter_interval_ms: 1000,
            serialize_last_processed_zxid: false,
        };
        assert_eq!(cfg.admin, want);
        let err = Config::parse("tickTime=2000\nadmin.serverPort=http\n", "z.cfg").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("z.cfg:2: 'http' is not a whole number"),
            "{err}"
        );
        assert!(Config::parse("admin.enableServer=yes\n", "z").is_err());
        assert!(Config::parse("admin.commandURL=commands\n", "z").is_err());
        assert!(Config::parse("admin.idleTimeout=0\n", "z").is_err());
    }

    #[test]
    fn super_digest_accepted_with_or_without_prefix() {
        for key in [
            "DigestAuthenticationProvider.superDigest",
            "zookeeper.DigestAuthenticationProvider.superDigest",
        ] {
            let cfg = Config::parse(&format!("{key}=super:abc=\n"), "zoo.cfg").unwrap();
            assert_eq!(cfg.super_digest.as_deref(), Some("super:abc="));
        }
    }

    #[test]
    fn read_only_mode_from_zoo_cfg_or_jvm_flags() {
        assert!(!Config::parse("", "zoo.cfg").unwrap().read_only_mode);
        assert!(
            Config::parse("readonlymode.enabled=true\n", "zoo.cfg")
                .unwrap()
                .read_only_mode
        );
        let mut cfg = Config::parse("", "zoo.cfg").unwrap();
        cfg.apply_jvm_flags(
            "-Xmx1g -Dfile.encoding=UTF-8 -Dreadonlymode.enabled=true",
            "X",
        )
        .unwrap();
        assert!(cfg.read_only_mode);
        let err = cfg.apply_jvm_flags("-Dreadonlymode.enabled=maybe", "SERVER_JVMFLAGS");
        assert!(err.unwrap_err().to_string().contains("$SERVER_JVMFLAGS"));
    }

    #[test]
    fn enforce_quota_accepted_with_or_without_prefix() {
        assert!(!Config::parse("", "zoo.cfg").unwrap().enforce_quota);
        for key in ["enforceQuota", "zookeeper.enforceQuota"] {
            let cfg = Config::parse(&format!("{key}=true\n"), "zoo.cfg").unwrap();
            assert!(cfg.enforce_quota, "{key}");
            assert!(cfg.warnings.is_empty(), "{key}: {:?}", cfg.warnings);
        }
        assert!(Config::parse("enforceQuota=yes\n", "zoo.cfg").is_err());
    }

    #[test]
    fn server_lines_parse() {
        let cfg = Config::parse(
            "server.1=127.0.0.1:2888:3888\nserver.2=h2:2889:3889:observer;127.0.0.1:2182\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(cfg.servers.len(), 2);
        assert!(cfg.servers[1].observer);
        assert_eq!(cfg.servers[1].client_port, Some(2182));
        assert_eq!(cfg.servers[1].client_host.as_deref(), Some("127.0.0.1"));
        assert_eq!(cfg.servers[0].client_port, None);
        assert!(Config::parse("server.x=h:1:2\n", "z").is_err());
        let cfg = Config::parse("server.3=h:1:2;2181\n", "z").unwrap();
        assert_eq!(
            (
                cfg.servers[0].client_host.as_deref(),
                cfg.servers[0].client_port
            ),
            (None, Some(2181))
        );
    }

    #[test]
    fn election_keys_parse_with_and_without_the_zookeeper_prefix() {
        let cfg = Config::default();
        assert_eq!(cfg.election_connect_timeout_ms, 5000);
        assert_eq!(cfg.election_port_bind_retry, 3);
        assert!(!cfg.quorum_listen_on_all_ips);
        let cfg = Config::parse(
            "quorumListenOnAllIPs=true\nzookeeper.cnxTimeout=700\nelectionPortBindRetry=0\n\
             zookeeper.quorumCnxnTimeoutMs=900\n",
            "zoo.cfg",
        )
        .unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert!(cfg.quorum_listen_on_all_ips);
        assert_eq!(cfg.election_connect_timeout_ms, 700);
        assert_eq!(cfg.election_port_bind_retry, 0);
        assert_eq!(cfg.quorum_cnxn_timeout_ms, 900);
        assert!(Config::parse("cnxTimeout=0\n", "z").is_err());
    }

    #[test]
    fn timeout_negotiation_clamps() {
        let cfg = Config::default();
        assert_eq!(cfg.negotiate_timeout_ms(1), 4000);
        assert_eq!(cfg.negotiate_timeout_ms(10_000), 10_000);
        assert_eq!(cfg.negotiate_timeout_ms(i32::MAX), 40_000);
    }

    #[test]
    fn batch_bounds_accept_zookeeper_property_names() {
        let cfg = Config::parse(
            "zookeeper.maxBatchSize=50\nflushDelay=2\nferrokeeper.maxBatchBytes=65536\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(
            (
                cfg.batch_requests_max,
                cfg.flush_delay_ms,
                cfg.batch_bytes_max
            ),
            (50, 2, 65536)
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert!(Config::parse("maxBatchSize=0\n", "z").is_err());
    }

    #[test]
    fn min_above_max_is_rejected() {
        assert!(Config::parse("minSessionTimeout=5000\nmaxSessionTimeout=4000\n", "z").is_err());
    }

    #[test]
    fn metrics_provider_keys_turn_the_endpoint_on_and_are_validated() {
        let off = Config::parse("dataDir=/tmp/zk\n", "z").unwrap();
        assert!(!off.metrics.enabled, "off unless the provider is named");
        let text = "metricsProvider.httpPort=7070\n\
                    metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
                    metricsProvider.httpHost=127.0.0.1\n\
                    metricsProvider.exportJvmInfo=false\n";
        let on = Config::parse(text, "z").unwrap();
        let want = MetricsConfig {
            enabled: true,
            http_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 7070,
            export_jvm_info: false,
        };
        assert_eq!(on.metrics, want);
        assert!(on.warnings.is_empty(), "{:?}", on.warnings);
        let default_class =
            "metricsProvider.className=org.apache.zookeeper.metrics.impl.DefaultMetricsProvider\n";
        assert!(!Config::parse(default_class, "z").unwrap().metrics.enabled);
        let err = Config::parse("tickTime=2000\nmetricsProvider.httpPort=70000\n", "zoo.cfg")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("zoo.cfg:2: ") && err.contains("70000"),
            "{err}"
        );
        let err = Config::parse("metricsProvider.className=com.example.Nope\n", "zoo.cfg")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("zoo.cfg:1: ") && err.contains("com.example.Nope"),
            "{err}"
        );
        assert!(Config::parse("metricsProvider.httpHost=no such host!\n", "z").is_err());
        assert!(Config::parse("metricsProvider.exportJvmInfo=maybe\n", "z").is_err());
    }
}
