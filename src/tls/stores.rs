//! Key and trust stores as ZooKeeper reads them: JKS, PKCS12 and PEM files,
//! the type given by `ssl.*Store.type` or inferred from the file extension
//! (`KeyStoreFileType.fromPropertyValueOrFileName`).
//!
//! Java (9+, `keystore.type.compat`) opens a PKCS12 file named `.jks` and a
//! JKS file named `.p12` alike, and keytool writes PKCS12 by default whatever
//! the name: binary stores are told apart by their first bytes, not the name.
//!
//! Every error names the zoo.cfg key to fix and the file.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::settings::{StoreKeys, StoreType};

/// What the key store holds for the server: its certificate chain (leaf
/// first) and that certificate's private key.
pub struct KeyMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The first four bytes of a JKS file.
const JKS_MAGIC: [u8; 4] = [0xfe, 0xed, 0xfe, 0xed];

/// Which of the two stores, for error messages (`ssl.keyStore` / `ssl.trustStore`).
#[derive(Clone, Copy)]
pub enum Which {
    Key,
    Trust,
}

impl Which {
    fn prefix(self) -> &'static str {
        match self {
            Which::Key => "ssl.keyStore",
            Which::Trust => "ssl.trustStore",
        }
    }
}

/// A store file read into memory, with its password and type resolved.
struct Opened<'a> {
    which: Which,
    path: &'a Path,
    bytes: Vec<u8>,
    password: String,
    store_type: StoreType,
}

impl Opened<'_> {
    fn file(&self) -> String {
        self.path.display().to_string()
    }

    fn fail(&self, key: &str, reason: impl std::fmt::Display) -> String {
        format!(
            "{}.{key}: {} store {}: {reason}",
            self.which.prefix(),
            self.store_type.name(),
            self.file()
        )
    }
}

fn open<'a>(which: Which, keys: &'a StoreKeys) -> Result<Opened<'a>, String> {
    let prefix = which.prefix();
    let path = keys
        .location
        .as_deref()
        .ok_or_else(|| format!("{prefix}.location: not set"))?;
    let file = path.display();
    let store_type = match keys.store_type {
        Some(t) => t,
        None => StoreType::from_file_name(path).ok_or_else(|| {
            format!(
                "{prefix}.type: not set, and {file} has none of the extensions \
                 .jks, .pem, .p12, .pfx to infer it from"
            )
        })?,
    };
    let password = match &keys.password_path {
        Some(secret) => std::fs::read_to_string(secret)
            .map_err(|e| {
                format!(
                    "{prefix}.passwordPath: cannot read {}: {e}",
                    secret.display()
                )
            })?
            .trim()
            .to_string(),
        None => keys.password.clone(),
    };
    let bytes =
        std::fs::read(path).map_err(|e| format!("{prefix}.location: cannot read {file}: {e}"))?;
    Ok(Opened {
        which,
        path,
        bytes,
        password,
        store_type,
    })
}

/// Loads `ssl.keyStore.*`: the server's certificate chain and private key.
pub fn load_key_store(keys: &StoreKeys) -> Result<KeyMaterial, String> {
    let opened = open(Which::Key, keys)?;
    match opened.store_type {
        StoreType::Pem => pem_key_store(&opened),
        StoreType::Jks | StoreType::Pkcs12 if opened.bytes.starts_with(&JKS_MAGIC) => {
            jks_key_store(&opened)
        }
        StoreType::Jks | StoreType::Pkcs12 => pkcs12_key_store(&opened),
    }
}

/// Loads `ssl.trustStore.*`: the certificates a client's chain must lead to.
pub fn load_trust_store(keys: &StoreKeys) -> Result<Vec<CertificateDer<'static>>, String> {
    let opened = open(Which::Trust, keys)?;
    let certs = match opened.store_type {
        StoreType::Pem => pem_certificates(&opened)?,
        StoreType::Jks | StoreType::Pkcs12 if opened.bytes.starts_with(&JKS_MAGIC) => {
            jks_trusted(&opened)?
        }
        StoreType::Jks | StoreType::Pkcs12 => pkcs12_trusted(&opened)?,
    };
    if certs.is_empty() {
        return Err(opened.fail("location", "holds no certificate"));
    }
    Ok(certs)
}

fn jks_open(opened: &Opened) -> Result<jks::KeyStore, String> {
    let mut store = jks::KeyStore::new();
    store
        .load(opened.bytes.as_slice(), opened.password.as_bytes())
        .map_err(|e| match e {
            // The password keys the file's integrity digest.
            jks::KeyStoreError::InvalidDigest => opened.fail(
                "password",
                "wrong password (the keystore's integrity check failed)",
            ),
            other => opened.fail("location", format!("not a readable JKS file: {other}")),
        })?;
    Ok(store)
}

fn jks_key_store(opened: &Opened) -> Result<KeyMaterial, String> {
    let store = jks_open(opened)?;
    let mut aliases = store.aliases();
    aliases.sort();
    let alias = aliases
        .into_iter()
        .find(|a| store.is_private_key_entry(a))
        .ok_or_else(|| opened.fail("location", "holds no private key entry"))?;
    // ZooKeeper protects the key with the store's password (KeyManagerFactory.init).
    let entry = store
        .get_private_key_entry(&alias, opened.password.as_bytes())
        .map_err(|e| opened.fail("password", format!("cannot decrypt key '{alias}': {e}")))?;
    let chain: Vec<_> = entry
        .certificate_chain
        .iter()
        .map(|c| CertificateDer::from(c.content.clone()))
        .collect();
    if chain.is_empty() {
        return Err(opened.fail("location", format!("key '{alias}' has no certificate")));
    }
    Ok(KeyMaterial {
        chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.private_key)),
    })
}

/// Java's trust managers trust a store's certificate entries and the
/// certificate of each key entry.
fn jks_trusted(opened: &Opened) -> Result<Vec<CertificateDer<'static>>, String> {
    let store = jks_open(opened)?;
    let mut aliases = store.aliases();
    aliases.sort();
    let mut certs = Vec::new();
    for alias in aliases {
        if let Ok(entry) = store.get_trusted_certificate_entry(&alias) {
            certs.push(CertificateDer::from(entry.certificate.content));
        } else if let Ok(chain) = store.get_private_key_entry_certificate_chain(&alias) {
            certs.extend(
                chain
                    .into_iter()
                    .take(1)
                    .map(|c| CertificateDer::from(c.content)),
            );
        }
    }
    Ok(certs)
}

fn pkcs12_open(opened: &Opened) -> Result<p12_keystore::KeyStore, String> {
    // Relaxed: a Java truststore's certificates carry no local key id and
    // must not be dropped as "unrelated".
    p12_keystore::KeyStore::from_pkcs12(
        &opened.bytes,
        &opened.password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => opened.fail(
            "password",
            "wrong password (the file's integrity check failed)",
        ),
        other => opened.fail(
            "location",
            format!("not a readable PKCS12 file (or a wrong password): {other}"),
        ),
    })
}

fn pkcs12_key_store(opened: &Opened) -> Result<KeyMaterial, String> {
    let store = pkcs12_open(opened)?;
    let (alias, chain) = store
        .private_key_chain()
        .ok_or_else(|| opened.fail("location", "holds no private key entry"))?;
    let certs: Vec<_> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(opened.fail("location", format!("key '{alias}' has no certificate")));
    }
    Ok(KeyMaterial {
        chain: certs,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
    })
}

fn pkcs12_trusted(opened: &Opened) -> Result<Vec<CertificateDer<'static>>, String> {
    let store = pkcs12_open(opened)?;
    let mut certs = Vec::new();
    for (_, entry) in store.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::Certificate(cert) => {
                certs.push(CertificateDer::from(cert.as_der().to_vec()))
            }
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => certs.extend(
                chain
                    .certs()
                    .iter()
                    .take(1)
                    .map(|c| CertificateDer::from(c.as_der().to_vec())),
            ),
            p12_keystore::KeyStoreEntry::Secret(_) => {}
        }
    }
    Ok(certs)
}

fn pem_certificates(opened: &Opened) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(&opened.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| opened.fail("location", format!("bad PEM certificate: {e}")))
}

/// ZooKeeper's `PemReader`: one file with the private key and the chain.
fn pem_key_store(opened: &Opened) -> Result<KeyMaterial, String> {
    let chain = pem_certificates(opened)?;
    if chain.is_empty() {
        return Err(opened.fail("location", "holds no CERTIFICATE block"));
    }
    let text = String::from_utf8_lossy(&opened.bytes);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(opened.fail(
            "location",
            "holds an encrypted private key, which Ferrokeeper does not read yet \
             (store the key unencrypted, or use a JKS or PKCS12 store)",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&opened.bytes)
        .map_err(|e| opened.fail("location", format!("no usable private key: {e}")))?;
    Ok(KeyMaterial { chain, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn keys(path: PathBuf) -> StoreKeys {
        StoreKeys {
            location: Some(path),
            ..StoreKeys::default()
        }
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fk-stores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn pem_key_store_with_key_and_chain() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let text = format!("{}{}", key.serialize_pem(), cert.pem());
        let path = temp_file("server.pem", text.as_bytes());
        let material = load_key_store(&keys(path.clone())).unwrap();
        assert_eq!(material.chain.len(), 1);
        let trusted = load_trust_store(&keys(path)).unwrap();
        assert_eq!(trusted.len(), 1);
    }

    #[test]
    fn missing_type_and_extension_names_the_key() {
        let path = temp_file("server.keystore", b"x");
        let err = load_key_store(&keys(path)).err().unwrap();
        assert!(err.starts_with("ssl.keyStore.type:"), "{err}");
    }

    #[test]
    fn unreadable_file_names_location_and_file() {
        let err = load_trust_store(&keys(PathBuf::from("/nonexistent/t.jks")))
            .err()
            .unwrap();
        assert!(err.contains("ssl.trustStore.location"), "{err}");
        assert!(err.contains("/nonexistent/t.jks"), "{err}");
    }

    #[test]
    fn pem_without_key_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let path = temp_file("only-cert.pem", cert.pem().as_bytes());
        let err = load_key_store(&keys(path)).err().unwrap();
        assert!(err.contains("private key"), "{err}");
    }
}
