//! ACLs and authentication: world, digest + addauth, auth, ip, per-operation permission checks,
//! the super user from zoo.cfg, and failed addauth.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::raw::{self, err, op, perms, Acl as RawAcl};
use common::zk::{self, Acl, Acls, AuthId, AuthUser, CreateMode, Permission};
use common::{digest_id, open, Server};

static SERVER: common::Shared = common::Shared::new();

const SUPER_PASSWORD: &str = "super-secret";

/// The shared server has a super user `super:super-secret`, configured through zoo.cfg
/// (`DigestAuthenticationProvider.superDigest`; passed to Apache as the JVM property
/// `zookeeper.DigestAuthenticationProvider.superDigest`).
fn server() -> &'static Server {
    static DIGEST: OnceLock<String> = OnceLock::new();
    let d = DIGEST.get_or_init(|| digest_id("super", SUPER_PASSWORD));
    common::shared(
        &SERVER,
        &[("DigestAuthenticationProvider.superDigest", d.as_str())],
    )
}

fn acl(p: Permission, scheme: &str, id: &str) -> Acl {
    Acl::new(p, AuthId::new(scheme, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_sha1_base64_format() {
    common::bounded(45, async {
        // the well-known example from the ZooKeeper documentation
        assert_eq!(
            digest_id("super", "test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_read_only_node() {
    common::bounded(45, async {
        let s = server();
        let owner = s.client().await;
        owner
            .create(
                "/acl_world",
                b"v",
                &CreateMode::Persistent.with_acls(Acls::anyone_read()),
            )
            .await
            .unwrap();
        let other = s.client().await;
        assert_eq!(other.get_data("/acl_world").await.unwrap().0, b"v");
        assert_eq!(other.list_children("/acl_world").await.unwrap().len(), 0);
        assert_eq!(
            other.set_data("/acl_world", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            other
                .create("/acl_world/k", b"", &open())
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            other
                .set_acl("/acl_world", &Acls::anyone_all(), None)
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        // the owner has no special rights under world:anyone
        assert_eq!(
            owner.set_data("/acl_world", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        // but DELETE is checked on the parent (/ is world:anyone ALL)
        other.delete("/acl_world", None).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_acl_with_addauth() {
    common::bounded(45, async {
        let s = server();
        let admin = s.client_with_auth("digest", b"bob:pw").await;
        let id = digest_id("bob", "pw");
        let a = [acl(Permission::ALL, "digest", &id)];
        admin
            .create(
                "/acl_digest",
                b"d",
                &CreateMode::Persistent.with_acls(Acls::new(&a)),
            )
            .await
            .unwrap();
        assert_eq!(admin.get_data("/acl_digest").await.unwrap().0, b"d");

        let anon = s.client().await;
        assert_eq!(
            anon.get_data("/acl_digest").await.unwrap_err(),
            zk::Error::NoAuth
        );
        let wrong = s.client_with_auth("digest", b"bob:wrong").await;
        assert_eq!(
            wrong.get_data("/acl_digest").await.unwrap_err(),
            zk::Error::NoAuth
        );
        // addauth later in the session
        anon.auth("digest", b"bob:pw").await.unwrap();
        assert_eq!(anon.get_data("/acl_digest").await.unwrap().0, b"d");
        anon.set_data("/acl_digest", b"e", None).await.unwrap();
        // several identities: any matching ACL entry grants
        wrong.auth("digest", b"bob:pw").await.unwrap();
        assert_eq!(wrong.get_data("/acl_digest").await.unwrap().0, b"e");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scheme_expands_to_session_identities() {
    common::bounded(45, async {
        let s = server();
        let c = s.client().await;
        // no authenticated identity: `auth` ACLs are invalid
        assert_eq!(
            c.create(
                "/acl_auth",
                b"",
                &CreateMode::Persistent.with_acls(Acls::creator_all())
            )
            .await
            .unwrap_err(),
            zk::Error::InvalidAcl
        );
        c.auth("digest", b"carol:pw1").await.unwrap();
        c.auth("digest", b"dave:pw2").await.unwrap();
        c.create(
            "/acl_auth",
            b"",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();
        let (mut got, _) = c.get_acl("/acl_auth").await.unwrap();
        got.sort_by(|a, b| a.id().cmp(b.id()));
        assert_eq!(
            got,
            [
                acl(Permission::ALL, "digest", &digest_id("carol", "pw1")),
                acl(Permission::ALL, "digest", &digest_id("dave", "pw2"))
            ]
        );
        // either identity grants access
        let d = s.client_with_auth("digest", b"dave:pw2").await;
        d.get_data("/acl_auth").await.unwrap();
        let e = s.client().await;
        assert_eq!(
            e.get_data("/acl_auth").await.unwrap_err(),
            zk::Error::NoAuth
        );
        // setACL with auth too
        c.set_acl("/acl_auth", &[acl(Permission::READ, "auth", "")], None)
            .await
            .unwrap();
        let (got, _) = c.get_acl("/acl_auth").await.unwrap();
        assert_eq!(got.len(), 2);
        assert!(
            got.iter()
                .all(|a| a.permission() == Permission::READ && a.scheme() == "digest"),
            "{got:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_scheme() {
    common::bounded(45, async {
        let s = server();
        let c = s.client().await;
        c.create("/acl_ip", b"", &open()).await.unwrap();
        let local = [acl(Permission::ALL, "ip", "127.0.0.1")];
        c.create(
            "/acl_ip/local",
            b"l",
            &CreateMode::Persistent.with_acls(Acls::new(&local)),
        )
        .await
        .unwrap();
        assert_eq!(c.get_data("/acl_ip/local").await.unwrap().0, b"l");
        let net = [acl(Permission::READ, "ip", "127.0.0.0/8")];
        c.create(
            "/acl_ip/net",
            b"n",
            &CreateMode::Persistent.with_acls(Acls::new(&net)),
        )
        .await
        .unwrap();
        assert_eq!(c.get_data("/acl_ip/net").await.unwrap().0, b"n");
        assert_eq!(
            c.set_data("/acl_ip/net", b"", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        // an address (and a network) this client is not in: ACL values only, no traffic goes there
        let foreign = [
            acl(Permission::ALL, "ip", "10.11.12.13"),
            acl(Permission::ALL, "ip", "192.0.2.0/24"),
        ];
        c.create(
            "/acl_ip/foreign",
            b"f",
            &CreateMode::Persistent.with_acls(Acls::new(&foreign)),
        )
        .await
        .unwrap();
        assert_eq!(
            c.get_data("/acl_ip/foreign").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.set_data("/acl_ip/foreign", b"", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        // invalid ip ACLs
        let bad = [acl(Permission::ALL, "ip", "127.0.0.1/99")];
        assert_eq!(
            c.create(
                "/acl_ip/bad",
                b"",
                &CreateMode::Persistent.with_acls(Acls::new(&bad))
            )
            .await
            .unwrap_err(),
            zk::Error::InvalidAcl
        );
        // the session's ip identity
        assert!(c
            .list_auth_users()
            .await
            .unwrap()
            .contains(&AuthUser::new("ip", "127.0.0.1")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_delete_are_checked_on_the_parent() {
    common::bounded(45, async {
        let s = server();
        let c = s.client().await;
        // parent without CREATE
        let no_create = [acl(
            Permission::READ | Permission::WRITE | Permission::DELETE | Permission::ADMIN,
            "world",
            "anyone",
        )];
        c.create(
            "/acl_nc",
            b"",
            &CreateMode::Persistent.with_acls(Acls::new(&no_create)),
        )
        .await
        .unwrap();
        assert_eq!(
            c.create("/acl_nc/k", b"", &open()).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.create(
                "/acl_nc/s-",
                b"",
                &CreateMode::EphemeralSequential.with_acls(Acls::anyone_all())
            )
            .await
            .unwrap_err(),
            zk::Error::NoAuth
        );

        // parent without DELETE: a child with ALL still cannot be deleted
        c.create("/acl_nd", b"", &open()).await.unwrap();
        c.create("/acl_nd/k", b"", &open()).await.unwrap();
        let no_delete = [acl(
            Permission::READ | Permission::WRITE | Permission::CREATE | Permission::ADMIN,
            "world",
            "anyone",
        )];
        c.set_acl("/acl_nd", &no_delete, None).await.unwrap();
        assert_eq!(
            c.delete("/acl_nd/k", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        c.create("/acl_nd/k2", b"", &open()).await.unwrap(); // CREATE is there

        // parent with DELETE only (plus CREATE to set up): a child without any permission can be deleted
        let cd = [acl(
            Permission::CREATE | Permission::DELETE,
            "world",
            "anyone",
        )];
        c.create(
            "/acl_del",
            b"",
            &CreateMode::Persistent.with_acls(Acls::new(&cd)),
        )
        .await
        .unwrap();
        let nothing = [acl(Permission::NONE, "world", "anyone")];
        c.create(
            "/acl_del/k",
            b"",
            &CreateMode::Persistent.with_acls(Acls::new(&nothing)),
        )
        .await
        .unwrap();
        c.delete("/acl_del/k", None).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_admin_are_checked_on_the_node() {
    common::bounded(45, async {
        let s = server();
        let c = s.client().await;
        c.create("/acl_rwa", b"", &open()).await.unwrap();

        // no READ
        let wa = [acl(
            Permission::WRITE | Permission::ADMIN | Permission::CREATE | Permission::DELETE,
            "world",
            "anyone",
        )];
        c.create(
            "/acl_rwa/noread",
            b"x",
            &CreateMode::Persistent.with_acls(Acls::new(&wa)),
        )
        .await
        .unwrap();
        assert_eq!(
            c.get_data("/acl_rwa/noread").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.list_children("/acl_rwa/noread").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.get_children("/acl_rwa/noread").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.get_and_watch_data("/acl_rwa/noread").await.unwrap_err(),
            zk::Error::NoAuth
        );
        c.set_data("/acl_rwa/noread", b"y", None).await.unwrap(); // WRITE is there
                                                                  // getACL needs READ or ADMIN: ADMIN is there
        assert_eq!(c.get_acl("/acl_rwa/noread").await.unwrap().0, wa);
        let mut r = c.new_multi_reader();
        r.add_get_data("/acl_rwa/noread").unwrap();
        match &r.commit().await.unwrap()[0] {
            zk::MultiReadResult::Error { err } => assert_eq!(err, &zk::Error::NoAuth),
            other => panic!("{other:?}"),
        }
        let exists = c.check_stat("/acl_rwa/noread").await;
        if common::check_39_behaviour("exists checks READ (3.9.2+)") {
            assert_eq!(exists.unwrap_err(), zk::Error::NoAuth);
        } else {
            assert!(exists.unwrap().is_some(), "3.8: exists needs no permission");
        }

        // no WRITE
        let ra = [acl(Permission::READ | Permission::ADMIN, "world", "anyone")];
        c.create(
            "/acl_rwa/nowrite",
            b"x",
            &CreateMode::Persistent.with_acls(Acls::new(&ra)),
        )
        .await
        .unwrap();
        assert_eq!(
            c.set_data("/acl_rwa/nowrite", b"y", None)
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        let mut w = c.new_multi_writer();
        w.add_set_data("/acl_rwa/nowrite", b"y", None).unwrap();
        assert!(matches!(
            w.commit().await,
            Err(zk::MultiWriteError::OperationFailed {
                index: 0,
                source: zk::Error::NoAuth
            })
        ));
        assert_eq!(c.get_data("/acl_rwa/nowrite").await.unwrap().0, b"x");

        // no ADMIN
        let rw = [acl(Permission::READ | Permission::WRITE, "world", "anyone")];
        c.create(
            "/acl_rwa/noadmin",
            b"x",
            &CreateMode::Persistent.with_acls(Acls::new(&rw)),
        )
        .await
        .unwrap();
        assert_eq!(
            c.set_acl("/acl_rwa/noadmin", &Acls::anyone_all(), None)
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.get_acl("/acl_rwa/noadmin").await.unwrap().0,
            rw,
            "getACL with READ only"
        );

        // neither READ nor ADMIN: getACL is refused
        let w_only = [acl(Permission::WRITE, "world", "anyone")];
        c.create(
            "/acl_rwa/wonly",
            b"",
            &CreateMode::Persistent.with_acls(Acls::new(&w_only)),
        )
        .await
        .unwrap();
        assert_eq!(
            c.get_acl("/acl_rwa/wonly").await.unwrap_err(),
            zk::Error::NoAuth
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_acl_without_admin_redacts_digests() {
    common::bounded(45, async {
        let s = server();
        let owner = s.client_with_auth("digest", b"erin:pw").await;
        let a = [
            acl(Permission::ALL, "digest", &digest_id("erin", "pw")),
            acl(Permission::READ, "world", "anyone"),
        ];
        owner
            .create(
                "/acl_redact",
                b"",
                &CreateMode::Persistent.with_acls(Acls::new(&a)),
            )
            .await
            .unwrap();
        assert_eq!(
            owner.get_acl("/acl_redact").await.unwrap().0,
            a,
            "with ADMIN: full ACL"
        );
        let reader = s.client().await;
        let (got, _) = reader.get_acl("/acl_redact").await.unwrap();
        assert_eq!(
            got,
            [
                acl(Permission::ALL, "digest", "erin:x"),
                acl(Permission::READ, "world", "anyone")
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_user_from_config_bypasses_acls() {
    common::bounded(45, async {
        let s = server();
        let owner = s.client_with_auth("digest", b"frank:pw").await;
        let only_frank = [acl(Permission::ALL, "digest", &digest_id("frank", "pw"))];
        let opts = CreateMode::Persistent.with_acls(Acls::new(&only_frank));
        owner.create("/acl_super", b"f", &opts).await.unwrap();
        owner.create("/acl_super/k", b"", &opts).await.unwrap();
        let nobody = [acl(Permission::NONE, "world", "anyone")];
        owner
            .create(
                "/acl_super/none",
                b"n",
                &CreateMode::Persistent.with_acls(Acls::new(&nobody)),
            )
            .await
            .unwrap();

        let other = s.client().await;
        assert_eq!(
            other.get_data("/acl_super").await.unwrap_err(),
            zk::Error::NoAuth
        );

        let su = s
            .client_with_auth("digest", format!("super:{SUPER_PASSWORD}").as_bytes())
            .await;
        assert_eq!(su.get_data("/acl_super").await.unwrap().0, b"f");
        assert_eq!(su.get_data("/acl_super/none").await.unwrap().0, b"n");
        su.set_data("/acl_super/none", b"m", None).await.unwrap();
        su.create("/acl_super/k/by-super", b"", &open())
            .await
            .unwrap();
        assert_eq!(
            su.get_acl("/acl_super").await.unwrap().0,
            only_frank,
            "super sees unredacted ACLs"
        );
        su.set_acl("/acl_super/none", &Acls::anyone_all(), None)
            .await
            .unwrap();
        su.delete("/acl_super/k/by-super", None).await.unwrap();
        su.delete("/acl_super/k", None).await.unwrap();
        other.get_data("/acl_super/none").await.unwrap();

        // a wrong super password is just another digest identity
        let not_su = s.client_with_auth("digest", b"super:wrong").await;
        assert_eq!(
            not_su.get_data("/acl_super").await.unwrap_err(),
            zk::Error::NoAuth
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_addauth_closes_the_connection() {
    common::bounded(45, async {
        let s = server();
        // raw: AUTHFAILED reply (xid -4), then the server closes the connection
        let mut r = s.raw();
        assert_eq!(r.add_auth("nosuchscheme", b"whatever"), err::AUTH_FAILED);
        assert!(
            r.wait_closed(Duration::from_secs(5)),
            "connection not closed after AUTHFAILED"
        );

        // zookeeper-client: the auth call fails and the session is unusable
        let c = s.client().await;
        assert_eq!(
            c.auth("nosuchscheme", b"x").await.unwrap_err(),
            zk::Error::AuthFailed
        );
        let e = c.check_stat("/").await.unwrap_err();
        assert!(
            matches!(
                e,
                zk::Error::AuthFailed | zk::Error::ConnectionLoss | zk::Error::SessionExpired
            ),
            "{e:?}"
        );

        // a successful addauth replies OK (xid -4) and keeps the connection
        let mut r = s.raw();
        assert_eq!(r.add_auth("digest", b"gina:pw"), 0);
        assert_eq!(r.exists("/", false).1.err, 0);
        // ZooKeeper's digest provider accepts any byte string (no ':' -> user is the whole string)
        assert_eq!(r.add_auth("digest", b"nocolon"), 0);
        let (_, rep) = r.call(op::WHO_AM_I, &[]);
        assert_eq!(rep.err, 0);
        let mut d = rep.dec();
        let n = d.int();
        let mut users: Vec<(String, String)> = (0..n).map(|_| (d.string(), d.string())).collect();
        users.sort();
        assert_eq!(
            users,
            [
                ("digest".into(), "gina".into()),
                ("digest".into(), "nocolon".into()),
                ("ip".into(), "127.0.0.1".into())
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_acl_checks() {
    common::bounded(45, async {
        let s = server();
        let mut r = s.raw();
        let acl = [RawAcl::new(perms::READ, "world", "anyone")];
        assert_eq!(
            r.req(op::CREATE, &raw::create_body("/acl_raw", b"", &acl, 0))
                .err,
            0
        );
        assert_eq!(
            r.req(op::SET_DATA, &raw::set_data_body("/acl_raw", b"x", -1))
                .err,
            err::NO_AUTH
        );
        assert_eq!(
            r.req(
                op::CREATE,
                &raw::create_body("/acl_raw/k", b"", &RawAcl::world_all(), 0)
            )
            .err,
            err::NO_AUTH
        );
        assert_eq!(
            r.req(
                op::SET_ACL,
                &raw::Enc::new()
                    .string("/acl_raw")
                    .acls(&RawAcl::world_all())
                    .int(-1)
                    .bytes()
            )
            .err,
            err::NO_AUTH
        );
        // NoAuth beats BadVersion? ZooKeeper checks the ACL first.
        assert_eq!(
            r.req(op::SET_DATA, &raw::set_data_body("/acl_raw", b"x", 42))
                .err,
            err::NO_AUTH
        );
        // NONODE beats NOAUTH for a missing node
        assert_eq!(
            r.req(
                op::SET_DATA,
                &raw::set_data_body("/acl_raw_missing", b"x", -1)
            )
            .err,
            err::NO_NODE
        );
        // a failed permission check leaves the connection usable
        assert_eq!(r.get_data("/acl_raw", false).1.err, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addauth_ids_per_connection_are_bounded() {
    if common::is_apache() {
        eprintln!("addauth_ids_per_connection_are_bounded: a Ferrokeeper-only bound; not run against Apache");
        return;
    }
    common::bounded(45, async {
        let s = server();
        let mut r = s.raw();
        // The ip id plus 127 digests fill the 128 allowed; the next is refused.
        for i in 0..127 {
            let credentials = format!("user{i}:pw");
            assert_eq!(
                r.add_auth("digest", credentials.as_bytes()),
                0,
                "addauth {i}"
            );
        }
        assert_eq!(r.add_auth("digest", b"one:toomany"), err::AUTH_FAILED);
        assert!(
            r.wait_closed(Duration::from_secs(5)),
            "connection not closed after too many auth ids"
        );
        assert_eq!(s.raw().exists("/", false).1.err, 0, "others are served");
    })
    .await;
}
