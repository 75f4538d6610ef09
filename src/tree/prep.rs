//! Write validation: requests -> txns, mirroring ZooKeeper's
//! `PrepRequestProcessor`, including the order of its checks (which decides
//! the error a client sees when several apply).

use super::node::{data_len, Data};

use super::acl::{check_acl, fix_acl, AuthInfo};
use super::node::{ttl_owner, Node, NodeKind};
use super::path::{self, validate_path};
use super::quota::QuotaExceeded;
use super::txn::{multi_error_codes, CreateKind, TxnHeader, TxnOp};
use super::DataTree;
use crate::proto::{perms, Acl, CreateMode, ErrorCode, CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrepOptions {
    /// zoo.cfg `extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `zookeeper.enforceQuota`: creates and setData are checked against
    /// the quotas (hard limits refuse, soft ones are reported).
    pub enforce_quota: bool,
    /// The `x509` scheme is valid in ACLs: ZooKeeper registers its provider
    /// only with a secure client port (`QuorumPeerConfig.configureSSLAuth`).
    pub x509_acls: bool,
}

/// What the quota check of one request reads and reports.
struct QuotaCheck<'t> {
    /// The tree before the request. ZooKeeper checks against its committed
    /// tree, not its outstanding changes, so every op of a multi is checked
    /// against the tree before the multi: a multi can take a subtree past a
    /// hard limit that each op alone stays within. (For single writes the
    /// newest tree is used: ZooKeeper's committed tree may lag pipelined
    /// writes, which is a race there, not a rule.)
    before: &'t DataTree,
    exceeded: &'t mut Vec<QuotaExceeded>,
}

/// A create / create2 / createContainer / createTTL request.
#[derive(Clone, Debug)]
pub struct CreateReq<'a> {
    pub path: &'a str,
    pub data: Data,
    pub acl: &'a [Acl],
    pub flags: i32,
    /// Only createTTL carries a TTL; None stands for ZooKeeper's -1.
    pub ttl_ms: Option<i64>,
    pub kind: CreateKind,
}

/// A write request as decoded from the wire (fields borrowed from the frame).
#[derive(Clone, Debug)]
pub enum WriteReq<'a> {
    Create(CreateReq<'a>),
    Delete {
        path: &'a str,
        version: i32,
    },
    /// Issued by the container/TTL reaper, not by clients; no ACL check.
    DeleteContainer {
        path: &'a str,
    },
    SetData {
        path: &'a str,
        data: Data,
        version: i32,
    },
    SetAcl {
        path: &'a str,
        acl: &'a [Acl],
        version: i32,
    },
    Check {
        path: &'a str,
        version: i32,
    },
    Multi(Vec<WriteReq<'a>>),
}

impl DataTree {
    /// Validates `req` against this (newest) tree. A multi never fails
    /// here: its failure is the txn `MultiError`, which is logged too.
    pub fn prep(
        &self,
        hdr: &TxnHeader,
        req: WriteReq<'_>,
        auth: &AuthInfo,
        opts: &PrepOptions,
    ) -> Result<TxnOp, ErrorCode> {
        self.prep_noting_quotas(hdr, req, auth, opts, &mut Vec::new())
    }

    /// [`DataTree::prep`], appending the quota limits the request goes over
    /// (with `enforce_quota`) to `exceeded`, for the caller to log as
    /// ZooKeeper does: soft ones let the write through, a hard one fails it.
    pub fn prep_noting_quotas(
        &self,
        hdr: &TxnHeader,
        req: WriteReq<'_>,
        auth: &AuthInfo,
        opts: &PrepOptions,
        exceeded: &mut Vec<QuotaExceeded>,
    ) -> Result<TxnOp, ErrorCode> {
        let mut quota = QuotaCheck {
            before: self,
            exceeded,
        };
        match req {
            WriteReq::Multi(reqs) => Ok(self.prep_multi(hdr, reqs, auth, opts, &mut quota)),
            single => self.prep_single(hdr, single, auth, opts, &mut quota),
        }
    }

    fn prep_single(
        &self,
        hdr: &TxnHeader,
        req: WriteReq<'_>,
        auth: &AuthInfo,
        opts: &PrepOptions,
        quota: &mut QuotaCheck<'_>,
    ) -> Result<TxnOp, ErrorCode> {
        match req {
            WriteReq::Create(create) => self.prep_create(hdr, create, auth, opts, quota),
            WriteReq::Delete { path, version } => self.prep_delete(path, version, auth),
            WriteReq::DeleteContainer { path } => self.prep_delete_container(path),
            WriteReq::SetData {
                path,
                data,
                version,
            } => self.prep_set_data(path, data, version, auth, opts, quota),
            WriteReq::SetAcl { path, acl, version } => {
                self.prep_set_acl(path, acl, version, auth, opts)
            }
            WriteReq::Check { path, version } => self.prep_check(path, version, auth),
            // Nested multis cannot be encoded on the wire.
            WriteReq::Multi(_) => Err(ErrorCode::BadArguments),
        }
    }

    /// Each op is validated against a scratch tree (O(1) clone) where the
    /// earlier ops are already applied, as ZooKeeper's outstanding changes do.
    fn prep_multi(
        &self,
        hdr: &TxnHeader,
        reqs: Vec<WriteReq<'_>>,
        auth: &AuthInfo,
        opts: &PrepOptions,
        quota: &mut QuotaCheck<'_>,
    ) -> TxnOp {
        let op_count = reqs.len();
        let mut scratch = self.clone();
        let mut ops = Vec::with_capacity(op_count);
        let mut events_discarded = Vec::new();
        for (index, req) in reqs.into_iter().enumerate() {
            match scratch.prep_single(hdr, req, auth, opts, quota) {
                Ok(op) => {
                    let result = scratch.apply(hdr, &op, &mut events_discarded);
                    assert!(!result.is_error(), "a prepped op applies cleanly");
                    events_discarded.clear();
                    ops.push(op);
                }
                Err(code) => return TxnOp::MultiError(multi_error_codes(op_count, index, code)),
            }
        }
        TxnOp::Multi(ops)
    }

    fn prep_create(
        &self,
        hdr: &TxnHeader,
        req: CreateReq<'_>,
        auth: &AuthInfo,
        opts: &PrepOptions,
        quota: &mut QuotaCheck<'_>,
    ) -> Result<TxnOp, ErrorCode> {
        let mode = CreateMode::from_flags(req.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !opts.extended_types_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl_ms = req.ttl_ms.unwrap_or(-1);
        validate_ttl(mode, ttl_ms)?;
        let ephemeral_owner = create_owner(req.kind, mode, ttl_ms, hdr.session_id)?;
        // Like ZooKeeper, only a cheap check before the parent lookup; the
        // full path check runs on the final (sequential) name below.
        let parent_path = match path::zk_parent(req.path) {
            Some(parent) if !req.path.contains('\0') => parent,
            _ => return Err(ErrorCode::BadArguments),
        };
        let acl = fix_acl(req.acl, auth, opts.x509_acls)?;
        let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&parent.acl, perms::CREATE, auth) {
            return Err(ErrorCode::NoAuth);
        }
        let final_path = if mode.is_sequential() {
            format!("{}{:010}", req.path, parent.stat.cversion)
        } else {
            req.path.to_string()
        };
        validate_path(&final_path)?;
        if self.get(&final_path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent.kind(), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        if opts.enforce_quota {
            let bytes = data_len(&req.data) as i64;
            quota
                .before
                .check_quota(&final_path, bytes, 1, quota.exceeded)?;
        }
        Ok(TxnOp::Create {
            path: final_path,
            data: req.data,
            acl,
            ephemeral_owner,
            parent_cversion: parent.stat.cversion.wrapping_add(1),
            kind: req.kind,
        })
    }

    fn prep_delete(&self, path: &str, version: i32, auth: &AuthInfo) -> Result<TxnOp, ErrorCode> {
        let parent_path = parent_for_delete(path)?;
        let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&parent.acl, perms::DELETE, auth) {
            return Err(ErrorCode::NoAuth);
        }
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        check_version(node.stat.version, version)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        Ok(TxnOp::Delete {
            path: path.to_string(),
        })
    }

    /// ZooKeeper's deleteContainer: refuses non-empty nodes and (oddly, but
    /// faithfully) only session ephemerals, with BadVersion.
    fn prep_delete_container(&self, path: &str) -> Result<TxnOp, ErrorCode> {
        let parent_path = parent_for_delete(path)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        if matches!(node.kind(), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::BadVersion);
        }
        self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        Ok(TxnOp::Delete {
            path: path.to_string(),
        })
    }

    fn prep_set_data(
        &self,
        path: &str,
        data: Data,
        version: i32,
        auth: &AuthInfo,
        opts: &PrepOptions,
        quota: &mut QuotaCheck<'_>,
    ) -> Result<TxnOp, ErrorCode> {
        let node = self.checked_node(path, perms::WRITE, auth)?;
        if opts.enforce_quota {
            // The old length from this tree: in a multi, earlier ops count.
            let bytes_delta = data_len(&data) as i64 - data_len(&node.data) as i64;
            quota
                .before
                .check_quota(path, bytes_delta, 0, quota.exceeded)?;
        }
        check_version(node.stat.version, version)?;
        Ok(TxnOp::SetData {
            path: path.to_string(),
            data,
            version: node.stat.version.wrapping_add(1),
        })
    }

    fn prep_set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: i32,
        auth: &AuthInfo,
        opts: &PrepOptions,
    ) -> Result<TxnOp, ErrorCode> {
        validate_path(path)?;
        let acl = fix_acl(acl, auth, opts.x509_acls)?;
        let node = self.checked_node(path, perms::ADMIN, auth)?;
        check_version(node.stat.aversion, version)?;
        Ok(TxnOp::SetAcl {
            path: path.to_string(),
            acl,
            version: node.stat.aversion.wrapping_add(1),
        })
    }

    fn prep_check(&self, path: &str, version: i32, auth: &AuthInfo) -> Result<TxnOp, ErrorCode> {
        let node = self.checked_node(path, perms::READ, auth)?;
        check_version(node.stat.version, version)?;
        Ok(TxnOp::Check {
            path: path.to_string(),
            version: node.stat.version,
        })
    }

    /// Path valid (BadArguments), node exists (NoNode), `perm` granted (NoAuth).
    fn checked_node(&self, path: &str, perm: i32, auth: &AuthInfo) -> Result<&Node, ErrorCode> {
        validate_path(path)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perm, auth) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(node)
    }
}

/// Version -1 matches any version.
fn check_version(current: i32, expected: i32) -> Result<(), ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(())
}

/// `EphemeralType.validateTTL`: TTL modes need 1..=TTL_MAX_MS, other modes
/// must not carry a TTL.
fn validate_ttl(mode: CreateMode, ttl_ms: i64) -> Result<(), ErrorCode> {
    let valid = if mode.is_ttl() {
        (1..=TTL_MAX_MS).contains(&ttl_ms)
    } else {
        ttl_ms < 0
    };
    if valid {
        Ok(())
    } else {
        Err(ErrorCode::BadArguments)
    }
}

/// ZooKeeper decides the owner by opcode when applying: createContainer
/// always makes a container, createTTL a TTL node, and create/create2 an
/// ephemeral or a plain persistent node (even for container/TTL flags).
fn create_owner(
    kind: CreateKind,
    mode: CreateMode,
    ttl_ms: i64,
    session_id: i64,
) -> Result<i64, ErrorCode> {
    match kind {
        CreateKind::Container => Ok(CONTAINER_EPHEMERAL_OWNER),
        CreateKind::Ttl if mode.is_ttl() => Ok(ttl_owner(ttl_ms)),
        // ZooKeeper would fail applying this one; refuse it up front.
        CreateKind::Ttl => Err(ErrorCode::BadArguments),
        CreateKind::Create | CreateKind::Create2 if mode.is_ephemeral() => Ok(session_id),
        CreateKind::Create | CreateKind::Create2 => Ok(0),
    }
}

/// ZooKeeper's getParentPathAndValidate: needs a '/', no NUL, and refuses
/// the built-in nodes ("/", "/zookeeper", its quota and config children).
fn parent_for_delete(path: &str) -> Result<&str, ErrorCode> {
    match path::zk_parent(path) {
        Some(parent) if !super::is_built_in(path) && !path.contains('\0') => Ok(parent),
        _ => Err(ErrorCode::BadArguments),
    }
}
