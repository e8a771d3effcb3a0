//! The sync client's TLS configuration, built from core's [`TlsMaterial`]
//! (rustls 0.22, the version the `nats` client takes), with the two hooks
//! both sinks install so a failed handshake is classified the same way on
//! both stacks ([`TlsSeen`]): a server-certificate verifier (which also
//! verifies the configured server name instead of the URL's host) and a
//! client-certificate resolver that notes when the server asks for one.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tidings_core::nats::{NatsConfig, TlsMaterial};
use tidings_core::ConfigError;

tidings_core::__tidings_tls_hooks!();

/// Checks the TLS settings as far as this stack can before connecting:
/// core reads the files; here the key must load and belong to the
/// certificate. Errors name the field and the path.
pub(crate) fn check(config: &NatsConfig) -> Result<(), ConfigError> {
    if !config.tls.is_set() {
        return Ok(());
    }
    build(&config.tls.load()?, Arc::default()).map(drop)
}

/// The client configuration for `material`; the hooks write into `seen`.
pub(crate) fn build(material: &TlsMaterial, seen: Seen) -> Result<ClientConfig, ConfigError> {
    // No CA configured: the system's roots, as the client would use (read
    // once per process).
    static NATIVE: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    let roots = trust_anchors(material, || {
        NATIVE
            .get_or_init(|| rustls_native_certs::load_native_certs().unwrap_or_default())
            .clone()
    })?;
    let inner = WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .map_err(no_usable_ca)?;
    let verifier = Verifier::new(inner, material, seen.clone());
    let client_key = match &material.client {
        None => None,
        Some(identity) => {
            let key = rustls::crypto::ring::sign::any_supported_type(&identity.key)
                .map_err(|e| identity.key_unusable(e))?;
            match check_key_matches(&identity.chain[0], key.as_ref()) {
                Ok(true) => {}
                Ok(false) => return Err(identity.keys_differ()),
                Err(why) => return Err(identity.key_mismatch(&why)),
            }
            Some(Arc::new(CertifiedKey::new(identity.chain.clone(), key)))
        }
    };
    let config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(ClientCert {
            key: client_key,
            seen,
        }));
    Ok(config)
}

/// Signs a probe with `key` and verifies it with the certificate's public
/// key: they belong together only if it verifies (`Ok(false)` when not;
/// `Err` when the check itself cannot be made).
fn check_key_matches(
    cert: &CertificateDer<'static>,
    key: &dyn rustls::sign::SigningKey,
) -> Result<bool, String> {
    let provider = rustls::crypto::ring::default_provider();
    let algorithms = provider.signature_verification_algorithms;
    let offered: Vec<SignatureScheme> = algorithms.mapping.iter().map(|(s, _)| *s).collect();
    let signer = key
        .choose_scheme(&offered)
        .ok_or("the key's algorithm is not supported")?;
    const PROBE: &[u8] = b"tidings: does this key belong to this certificate?";
    let signature = signer
        .sign(PROBE)
        .map_err(|e| format!("signing with the key failed: {e}"))?;
    let cert = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(s, _)| *s == signer.scheme())
        .map(|(_, algs)| *algs)
        .unwrap_or_default();
    Ok(candidates
        .iter()
        .any(|alg| cert.verify_signature(*alg, PROBE, &signature).is_ok()))
}
