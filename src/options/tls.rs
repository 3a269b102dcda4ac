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
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        for (path, option) in [
            (&self.crt_file, "tls.crt_file"),
            (&self.key_file, "tls.key_file"),
        ] {
            if path.as_os_str().is_empty() {
                return Err(BuildError::new(format!("`{option}` is empty")).for_option(option));
            }
        }
        let (crt_file, key_file) = (resolve(&self.crt_file), resolve(&self.key_file));
        let certs = CertificateDer::pem_file_iter(&crt_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                BuildError::new(format!(
                    "cannot read certificates from {}: {}",
                    crt_file.display(),
                    pem_problem(&e)
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
            let problem = match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    let encrypted = std::fs::read_to_string(&key_file)
                        .is_ok_and(|text| text.contains("ENCRYPTED"));
                    if encrypted {
                        "the key is encrypted; howl needs it unencrypted (`openssl pkey -in KEY \
                         -out PLAIN`), readable by howl only"
                            .to_string()
                    } else {
                        "it holds no private key (a `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` \
                         or `BEGIN EC PRIVATE KEY` section)"
                            .to_string()
                    }
                }
                other => pem_problem(&other),
            };
            BuildError::new(format!(
                "cannot read a private key from {}: {problem}",
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

/// A PEM reading error in words (the library's own shows byte arrays).
fn pem_problem(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => format!(
            "a PEM section has no `-----END {}-----` line (is the file cut short?)",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "a malformed `-----BEGIN` line: {}",
            String::from_utf8_lossy(line)
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(dir: &Path, crt: &str, key: &str) -> String {
        let tls = TlsConfig {
            crt_file: PathBuf::from(crt),
            key_file: PathBuf::from(key),
        };
        match tls.server_config(|path| dir.join(path)) {
            Ok(_) => panic!("{crt} and {key} made a TLS identity"),
            Err(error) => format!("{}: {}", error.option.unwrap_or_default(), error.message),
        }
    }

    #[test]
    fn bad_files_are_named_and_the_problem_said_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("cut.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        write(
            "crt.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        write(
            "encrypted.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let cases = [
            ("", "k", "tls.crt_file: `tls.crt_file` is empty"),
            ("crt.pem", "", "tls.key_file: `tls.key_file` is empty"),
            (
                "missing.pem",
                "k",
                "tls.crt_file: cannot read certificates from",
            ),
            ("cut.pem", "k", "has no `-----END CERTIFICATE-----` line"),
            ("crt.pem", "crt.pem", "it holds no private key"),
            ("crt.pem", "encrypted.key", "the key is encrypted"),
        ];
        for (crt, key, expected) in cases {
            let message = error(dir.path(), crt, key);
            assert!(message.contains(expected), "{crt}, {key}: {message}");
        }
    }
}
