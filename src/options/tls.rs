//! [`TlsConfig`]: the `tls` option of every listening source (a
//! certificate and key in PEM files), read and checked at build time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::diagnostic::BuildError;

/// TLS for a TCP listener: howl's certificate and key, in PEM files.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), leaf first; a relative path is
    /// relative to the config file.
    pub crt_file: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsConfig {
    /// The acceptor of a plain TCP protocol (no ALPN); `resolve` makes a
    /// relative path absolute (relative to the config file).
    pub fn acceptor(
        &self,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<tokio_rustls::TlsAcceptor, BuildError> {
        Ok(tokio_rustls::TlsAcceptor::from(
            self.server_config(resolve)?,
        ))
    }

    /// Reads the files and makes the server's TLS settings, at build time:
    /// a missing or wrong file is a config error, not a failure at the
    /// first client. Errors name `tls.*`; a caller whose options nest
    /// `tls` elsewhere prefixes them.
    pub fn server_config(
        &self,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<Arc<rustls::ServerConfig>, BuildError> {
        let (crt_file, key_file) = (resolve(&self.crt_file), resolve(&self.key_file));
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(&crt_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                BuildError::new(format!(
                    "cannot read certificates from {}: {e}",
                    crt_file.display()
                ))
                .for_option("tls.crt_file")
            })?;
        if certs.is_empty() {
            return Err(BuildError::new(format!(
                "{} holds no PEM certificate",
                crt_file.display()
            ))
            .for_option("tls.crt_file"));
        }
        let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
            BuildError::new(format!(
                "cannot read a private key from {}: {e}",
                key_file.display()
            ))
            .for_option("tls.key_file")
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError::new(format!("TLS: {e}")).for_option("tls"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                BuildError::new(format!(
                    "the certificate and key do not make a TLS identity: {e}"
                ))
                .for_option("tls")
            })?;
        Ok(Arc::new(config))
    }
}
