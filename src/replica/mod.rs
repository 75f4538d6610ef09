//! The quorum port's runtime: what moves ZAB's packets between servers for
//! the pipeline executor, which runs the leader's or the learner's core
//! (`server::pipeline::{roles, leading, following}`). Nothing here decides
//! anything about the protocol: that is `crate::zab`'s.
//!
//! Submodules:
//! - [`link`] one quorum-port connection: a reader task decoding packets
//!   (and the snapshot after a SNAP), a writer task draining a bounded queue.
//! - [`events`] the bounded queue the tasks hand the pipeline events on.
//! - [`history`] the logged txns kept in memory for DIFF syncs.
//! - [`status`] the server's role for four-letter words, admin and metrics.
//! - [`secure`] a link's byte stream, plain or TLS (`sslQuorum`), and the
//!   bounded TLS accept and dial.
//!
//! [`prepare`] opens what an ensemble member needs before the executors
//! start: the epoch files, the quorum listener and the election.

pub mod events;
pub mod history;
pub mod link;
pub mod secure;
pub mod status;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::config::Config;
use crate::limits::quorum as limits;
use crate::quorum::cnx::CnxManager;
use crate::quorum::elector::{Elector, ElectorSettings, History};
use crate::quorum::ensemble::{CnxSettings, Ensemble};
use crate::storage::epochs::{load_epochs, Epochs};
use crate::tls::QuorumTls;
use crate::zab::election::Timing as ElectionTiming;

/// Everything the pipeline needs to take part in an ensemble.
pub struct ZabStart {
    pub ensemble: Ensemble,
    pub elector: Elector,
    pub epochs: Epochs,
    /// Bound before the executors start, so a port in use stops startup.
    pub quorum_listener: TcpListener,
    /// zoo.cfg's `peerType=observer` or `:observer` on this server's line.
    pub observer: bool,
    /// Quorum TLS for the quorum port's links (the election has its own handle).
    pub quorum_tls: Option<Arc<QuorumTls>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0}")]
    Ensemble(#[from] crate::quorum::ensemble::EnsembleError),
    #[error("cannot read the epoch files: {0}")]
    Epochs(#[from] crate::storage::StorageError),
    #[error("cannot listen on the quorum port {addr}: {source}")]
    QuorumPort {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the election on its port: {0}")]
    Election(std::io::Error),
    #[error("quorum TLS: {0}")]
    Tls(String),
}

/// Opens the epoch files, binds the quorum port and starts the election
/// from this server's last logged zxid (the log is durable: recovery ran).
pub fn prepare(cfg: &Config, last_zxid: i64) -> Result<ZabStart, PrepareError> {
    let ensemble = Ensemble::from_config(cfg)?;
    // Before anything binds: a bad store is a startup error naming its key.
    let quorum_tls = QuorumTls::load(&cfg.quorum_tls).map_err(PrepareError::Tls)?;
    let epochs = load_epochs(Path::new(&cfg.data_dir), last_zxid)?;
    let me = ensemble.me().clone();
    let host = if cfg.quorum_listen_on_all_ips {
        "0.0.0.0".to_string()
    } else {
        me.host.clone()
    };
    let addr = crate::quorum::ensemble::resolve(&host, me.quorum_port).map_err(|source| {
        PrepareError::QuorumPort {
            addr: SocketAddr::from(([0, 0, 0, 0], me.quorum_port)),
            source,
        }
    })?;
    let quorum_listener =
        TcpListener::bind(addr).map_err(|source| PrepareError::QuorumPort { addr, source })?;
    let settings = ElectorSettings {
        voters: ensemble.voters(),
        config_text: ensemble.config_text(),
        timing: ElectionTiming::default(),
        tick_interval: Duration::from_millis(limits::ELECTION_TICK_INTERVAL_MS),
    };
    let cnx_settings = CnxSettings {
        tls: quorum_tls.clone(),
        ..CnxSettings::from_config(cfg)
    };
    let (cnx, cnx_events) =
        CnxManager::start(ensemble.clone(), cnx_settings).map_err(PrepareError::Election)?;
    let history = History {
        last_zxid,
        current_epoch: epochs.current,
    };
    let elector =
        Elector::spawn(cnx, cnx_events, settings, history).map_err(PrepareError::Election)?;
    info!(
        sid = ensemble.my_sid,
        "ensemble of {} servers ({} voters); quorum port {addr}; epochs accepted {} current {}",
        ensemble.members.len(),
        ensemble.voters().len(),
        epochs.accepted,
        epochs.current
    );
    Ok(ZabStart {
        observer: me.observer,
        ensemble,
        elector,
        epochs,
        quorum_listener,
        quorum_tls,
    })
}
