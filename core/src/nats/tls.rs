//! TLS settings for both NATS sinks: which CAs to trust, the client
//! certificate for mutual TLS, whether TLS is required, and the name to
//! verify in the server's certificate. Read and checked here once, so both
//! stacks refuse the same bad file with the same [`ConfigError`].
//!
//! ```no_run
//! use tidings_core::nats::NatsConfig;
//!
//! // A private CA, a client certificate (mutual TLS), TLS required, and the
//! // name in the server's certificate (the URL names an IP address).
//! let config = NatsConfig::new("tls://10.1.2.3:4222", "app.reports")
//!     .tls_ca_file("/etc/tidings/ca.pem")
//!     .tls_client_cert("/etc/tidings/client.pem", "/etc/tidings/client-key.pem")
//!     .require_tls()
//!     .tls_server_name("nats.internal");
//! config.validate()?; // reads the three files: missing, unreadable or not PEM fails here
//! # Ok::<(), tidings_core::ConfigError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::ConfigError;

/// TLS settings of a [`NatsConfig`](super::NatsConfig), the same for both
/// NATS sinks. The default is no TLS settings: TLS is used when the URL
/// says `tls://` or the server requires it, verified against the system's
/// roots and the URL's host.
///
/// What each setting guarantees:
///
/// * [`ca_files`](Self::ca_files): the server's certificate must chain to
///   one of the certificates in these PEM files; **the system's roots are
///   then not trusted**. Empty: the system's roots.
/// * [`client_cert`](Self::client_cert) + [`client_key`](Self::client_key):
///   presented when the server asks for a client certificate (mutual TLS,
///   `verify: true`). Both or neither; the key must match the certificate
///   (checked when the sink is built, never at the first report).
/// * [`require_tls`](Self::require_tls): never talk to the server without
///   TLS. A server that does not offer TLS is refused (reports retried, then
///   spilled) with an error saying so, instead of sending credentials and
///   reports in the clear.
/// * [`server_name`](Self::server_name): the name the server's certificate
///   must be valid for, when it differs from the URL's host (an IP address,
///   a load balancer's name). Both sinks support it.
///
/// Files are read when the configuration is validated (when a sink is
/// built): a missing, unreadable or non-PEM file, a key file without a key,
/// a certificate without its key, fail with a [`ConfigError`] naming the
/// field (`nats.tls.ca_file`, `nats.tls.client_cert`, `nats.tls.client_key`,
/// `nats.tls.server_name`) and the path. The content of a key file is never
/// shown, by `Debug` or in an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM files of the CAs to trust (each may hold several certificates).
    pub ca_files: Vec<PathBuf>,
    /// PEM file of the client certificate (its chain may follow it).
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
    /// Refuse a connection without TLS.
    pub require_tls: bool,
    /// The name to verify in the server's certificate instead of the URL's host.
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// True when any setting differs from the default (the sinks then
    /// build their client's TLS configuration from [`TlsConfig::load`]).
    pub fn is_set(&self) -> bool {
        *self != TlsConfig::default()
    }

    /// Reads and checks every file and the server name. Each error names
    /// the field and the path; a key file's content is never shown.
    pub fn load(&self) -> Result<TlsMaterial, ConfigError> {
        let mut roots = Vec::new();
        for path in &self.ca_files {
            roots.extend(read_certs("nats.tls.ca_file", path)?);
        }
        let client = match (&self.client_cert, &self.client_key) {
            (None, None) => None,
            (Some(cert), None) => {
                return Err(ConfigError::new(
                    "nats.tls.client_key",
                    format!(
                        "is missing: the client certificate {} needs its private key",
                        cert.display()
                    ),
                ))
            }
            (None, Some(key)) => {
                return Err(ConfigError::new(
                    "nats.tls.client_cert",
                    format!(
                        "is missing: the private key {} needs its certificate",
                        key.display()
                    ),
                ))
            }
            (Some(cert), Some(key)) => Some(ClientIdentity {
                chain: read_certs("nats.tls.client_cert", cert)?,
                key: read_key(key)?,
                cert_path: cert.clone(),
                key_path: key.clone(),
            }),
        };
        let server_name = match &self.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                ConfigError::new(
                    "nats.tls.server_name",
                    format!("{name:?} is not a DNS name or an IP address"),
                )
            })?),
        };
        Ok(TlsMaterial {
            roots,
            client,
            server_name,
            require_tls: self.require_tls,
        })
    }
}

/// What [`TlsConfig::load`] read: DER, in the types both clients' rustls
/// versions take. `Debug` shows counts and paths, never key bytes.
pub struct TlsMaterial {
    /// The CAs to trust; empty: the system's roots.
    pub roots: Vec<CertificateDer<'static>>,
    /// The client certificate chain and key, for mutual TLS.
    pub client: Option<ClientIdentity>,
    /// The name to verify instead of the URL's host.
    pub server_name: Option<ServerName<'static>>,
    /// Refuse a connection without TLS.
    pub require_tls: bool,
}

/// A client certificate chain and its key, with the paths they came from
/// (for error messages).
pub struct ClientIdentity {
    /// The certificate first, then its chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key (zeroed when dropped).
    pub key: PrivateKeyDer<'static>,
    /// Where the certificate was read.
    pub cert_path: PathBuf,
    /// Where the key was read.
    pub key_path: PathBuf,
}

impl ClientIdentity {
    /// The error a sink returns when its TLS library finds that the key does
    /// not belong to the certificate (or cannot use it).
    pub fn key_mismatch(&self, why: &str) -> ConfigError {
        ConfigError::new(
            "nats.tls.client_key",
            format!(
                "{} cannot be used with the certificate {}: {why}",
                self.key_path.display(),
                self.cert_path.display()
            ),
        )
    }

    /// The TLS library cannot use the key at all (`why`: its words).
    pub fn key_unusable(&self, why: impl fmt::Display) -> ConfigError {
        self.key_mismatch(&format!("the key is not usable: {why}"))
    }

    /// The key's public half is not the certificate's.
    pub fn keys_differ(&self) -> ConfigError {
        self.key_mismatch("the key does not belong to the certificate (its public key differs)")
    }
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("roots", &self.roots.len())
            .field("client", &self.client)
            .field("server_name", &self.server_name)
            .field("require_tls", &self.require_tls)
            .finish()
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("chain", &self.chain.len())
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

fn read_file(field: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            std::io::ErrorKind::PermissionDenied => {
                "is not readable (permission denied)".to_owned()
            }
            _ => format!("cannot be read: {e}"),
        };
        ConfigError::new(field, format!("{} {why}", path.display()))
    })
}

/// What is wrong with a PEM file, without quoting any of it (the file may
/// be a key).
fn pem_problem(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::NoItemsFound => "holds no PEM block of the expected kind",
        pem::Error::MissingSectionEnd { .. } => "is not valid PEM (a block has no END line)",
        pem::Error::IllegalSectionStart { .. } => "is not valid PEM (a malformed BEGIN line)",
        pem::Error::Base64Decode(_) => "is not valid PEM (bad base64)",
        pem::Error::SectionTooLarge => "is not valid PEM (a block is too large)",
        _ => "is not valid PEM",
    }
}

fn read_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read_file(field, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(field, format!("{} {}", path.display(), pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            field,
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    const FIELD: &str = "nats.tls.client_key";
    let bytes = read_file(FIELD, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let problem = match e {
            pem::Error::NoItemsFound => {
                "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)"
            }
            other => pem_problem(&other),
        };
        ConfigError::new(FIELD, format!("{} {problem}", path.display()))
    })
}

/// The two TLS hooks both NATS sinks install, written once: a
/// server-certificate verifier (checks the configured roots, for the
/// configured server name instead of the URL's host when there is one) and
/// a client-certificate resolver, both noting what they saw in a
/// [`TlsSeen`](crate::nats::TlsSeen) so that
/// [`ConnectFailure::classify`](crate::nats::ConnectFailure::classify)
/// reads a failed handshake the same way on either stack.
///
/// A macro, not types: the two clients link different rustls versions
/// (async-nats 0.23, the sync `nats` client 0.22), whose traits are
/// distinct. It expands against the caller's imports of
/// `ServerCertVerifier`, `HandshakeSignatureValid`, `ServerCertVerified`,
/// `WebPkiServerVerifier`, `ResolvesClientCert`, `CertifiedKey`,
/// `CertificateDer`, `ServerName`, `UnixTime`, `DigitallySignedStruct`,
/// `SignatureScheme`, `RootCertStore` and `Error` from its rustls, and
/// defines `Seen`, `note`, `trust_anchors`, `no_usable_ca`, `Verifier` and
/// `ClientCert` there. Not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! __tidings_tls_hooks {
    () => {
        /// What the hooks of one connect attempt saw.
        pub(crate) type Seen = ::std::sync::Arc<::std::sync::Mutex<$crate::nats::TlsSeen>>;

        fn note(seen: &Seen, f: impl FnOnce(&mut $crate::nats::TlsSeen)) {
            f(&mut seen.lock().unwrap_or_else(|e| e.into_inner()));
        }

        /// The configured CAs, or the system's (`native`) when none is
        /// configured, as the roots to verify the server's certificate by.
        fn trust_anchors(
            material: &$crate::nats::TlsMaterial,
            native: impl FnOnce() -> Vec<CertificateDer<'static>>,
        ) -> Result<RootCertStore, $crate::ConfigError> {
            let mut roots = RootCertStore::empty();
            if material.roots.is_empty() {
                roots.add_parsable_certificates(native());
            }
            for (i, cert) in material.roots.iter().enumerate() {
                roots.add(cert.clone()).map_err(|e| {
                    $crate::ConfigError::new(
                        "nats.tls.ca_file",
                        format!(
                            "CA certificate #{} cannot be used as a trust anchor: {e}",
                            i + 1
                        ),
                    )
                })?;
            }
            Ok(roots)
        }

        /// The roots gave no verifier.
        fn no_usable_ca(e: impl ::std::fmt::Display) -> $crate::ConfigError {
            $crate::ConfigError::new("nats.tls.ca_file", format!("no usable CA: {e}"))
        }

        /// Verifies the server's certificate with the configured roots, for
        /// the configured server name when there is one, and notes the
        /// result.
        #[derive(Debug)]
        struct Verifier {
            inner: ::std::sync::Arc<WebPkiServerVerifier>,
            name: Option<ServerName<'static>>,
            seen: Seen,
        }

        impl Verifier {
            /// Verifies by `inner`, for `material`'s server name, noting
            /// into `seen`.
            fn new(
                inner: ::std::sync::Arc<WebPkiServerVerifier>,
                material: &$crate::nats::TlsMaterial,
                seen: Seen,
            ) -> ::std::sync::Arc<Verifier> {
                ::std::sync::Arc::new(Verifier {
                    inner,
                    name: material.server_name.clone(),
                    seen,
                })
            }
        }

        impl ServerCertVerifier for Verifier {
            fn verify_server_cert(
                &self,
                end_entity: &CertificateDer<'_>,
                intermediates: &[CertificateDer<'_>],
                server_name: &ServerName<'_>,
                ocsp_response: &[u8],
                now: UnixTime,
            ) -> Result<ServerCertVerified, Error> {
                let name = self.name.as_ref().unwrap_or(server_name);
                let verified = self.inner.verify_server_cert(
                    end_entity,
                    intermediates,
                    name,
                    ocsp_response,
                    now,
                );
                note(&self.seen, |s| {
                    s.server_cert = Some(verified.as_ref().map(drop).map_err(|e| e.to_string()))
                });
                verified
            }

            fn verify_tls12_signature(
                &self,
                message: &[u8],
                cert: &CertificateDer<'_>,
                dss: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, Error> {
                self.inner.verify_tls12_signature(message, cert, dss)
            }

            fn verify_tls13_signature(
                &self,
                message: &[u8],
                cert: &CertificateDer<'_>,
                dss: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, Error> {
                self.inner.verify_tls13_signature(message, cert, dss)
            }

            fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
                // Asked while the client hello is written: a handshake began.
                note(&self.seen, |s| s.handshake_started = true);
                self.inner.supported_verify_schemes()
            }
        }

        /// Presents the configured client certificate, and notes that the
        /// server asked for one.
        #[derive(Debug)]
        struct ClientCert {
            key: Option<::std::sync::Arc<CertifiedKey>>,
            seen: Seen,
        }

        impl ResolvesClientCert for ClientCert {
            fn resolve(
                &self,
                _root_hint_subjects: &[&[u8]],
                _sigschemes: &[SignatureScheme],
            ) -> Option<::std::sync::Arc<CertifiedKey>> {
                note(&self.seen, |s| {
                    s.client_cert_asked = Some(self.key.is_some())
                });
                self.key.clone()
            }

            fn has_certs(&self) -> bool {
                self.key.is_some()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // A syntactically valid PEM certificate block (the DER is not parsed here).
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";
    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn every_bad_file_names_its_field_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let cert = write(dir.path(), "c.pem", CERT);
        let key = write(dir.path(), "k.pem", KEY);
        let junk = write(
            dir.path(),
            "junk.pem",
            "not pem at all c2VjcmV0LWtleS1ieXRlcw==",
        );
        let missing = dir.path().join("missing.pem");
        let ok = TlsConfig {
            ca_files: vec![cert.clone()],
            client_cert: Some(cert.clone()),
            client_key: Some(key.clone()),
            require_tls: true,
            server_name: Some("nats.internal".into()),
        };
        let material = ok.load().unwrap();
        assert_eq!(material.roots.len(), 1);
        let shown = format!("{material:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");

        let cases: Vec<(TlsConfig, &str, &Path)> = vec![
            (
                TlsConfig {
                    ca_files: vec![missing.clone()],
                    ..ok.clone()
                },
                "nats.tls.ca_file",
                &missing,
            ),
            (
                TlsConfig {
                    ca_files: vec![junk.clone()],
                    ..ok.clone()
                },
                "nats.tls.ca_file",
                &junk,
            ),
            (
                TlsConfig {
                    ca_files: vec![key.clone()],
                    ..ok.clone()
                },
                "nats.tls.ca_file",
                &key,
            ),
            (
                TlsConfig {
                    client_cert: Some(junk.clone()),
                    ..ok.clone()
                },
                "nats.tls.client_cert",
                &junk,
            ),
            (
                TlsConfig {
                    client_key: Some(cert.clone()),
                    ..ok.clone()
                },
                "nats.tls.client_key",
                &cert,
            ),
            (
                TlsConfig {
                    client_key: Some(missing.clone()),
                    ..ok.clone()
                },
                "nats.tls.client_key",
                &missing,
            ),
            (
                TlsConfig {
                    client_key: None,
                    ..ok.clone()
                },
                "nats.tls.client_key",
                &cert,
            ),
        ];
        for (config, field, path) in cases {
            let e = config.load().unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            assert!(e.problem().contains(&path.display().to_string()), "{e}");
            assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        }
        let e = TlsConfig {
            server_name: Some("not a name".into()),
            ..ok
        }
        .load()
        .unwrap_err();
        assert_eq!(e.field(), "nats.tls.server_name");
    }
}
