//! NATS plumbing shared by the `nats` source and sink: the connection
//! options every NATS component takes in its own table (`url`, `auth.*`,
//! `tls.*`, see [`NatsConnection`]), connecting with the server-version
//! check, and the optional stream a component creates or checks
//! ([`stream`]) and compressed payloads ([`compression`]); the key-value buckets of a fleet's shared state ([`kv`]),
//! and the `pattern` transform's spaces kept in one ([`pattern_spaces`]).
//!
//! howl speaks to NATS through async-nats 0.52, and is tested against
//! Debian's nats-server 2.9.10. Some of the client's calls assume a newer
//! server and silently misbehave on 2.9 (strict consumer creation, several
//! filter subjects, per-key TTLs, account queries): this module and its
//! users call none of them, and a server older than 2.9.0 (no named
//! consumer creation) is refused at connect.
//!
//! Credentials are [`Secret`]s (never printed) and are never part of a
//! URL: a URL with `user:password@` is refused, since URLs appear in logs.

pub mod compression;
pub mod kv;
pub mod partition;
pub mod pattern_spaces;
pub mod stream;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, ServerAddr};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::components::BuildContext;
use crate::diagnostic::BuildError;
use crate::http::RetryPolicy;
use crate::secret::Secret;

/// The oldest server howl works with: 2.9.0 added the consumer creation
/// API (`$JS.API.CONSUMER.CREATE.<stream>.<name>`) that the client always
/// uses.
const MIN_SERVER: (u64, u64, u64) = (2, 9, 0);

/// How a NATS component reaches its server: written in the component's
/// own table, defined once for the source and the sink.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsConnection {
    /// The server, e.g. `nats://127.0.0.1:4222`; several servers of one
    /// cluster separated by commas. `tls://` requires TLS. Credentials go
    /// in `auth.*`, never in the URL (URLs are logged).
    #[schemars(extend("x-placeholder" = "nats://127.0.0.1:4222"))]
    pub url: String,
    /// How howl authenticates; unset sends no credentials.
    pub auth: Option<NatsAuth>,
    /// TLS towards the server (also implied by a `tls://` URL).
    pub tls: Option<NatsTls>,
}

/// The `auth` table of a NATS component. One flat table (as the HTTP
/// sinks' `auth`), so every `auth.*` key is known whichever strategy is
/// picked; the strategy's missing and foreign keys are errors.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsAuth {
    /// `user_password` (`auth.user`, `auth.password`), `token`
    /// (`auth.token`), `nkey` (`auth.nkey_seed`) or `credentials_file`
    /// (`auth.credentials_file`: a `.creds` file with a JWT and its NKey
    /// seed, as `nsc` writes it).
    pub strategy: NatsAuthStrategy,
    /// The user, for `user_password`.
    pub user: Option<String>,
    /// The password, for `user_password`.
    pub password: Option<Secret>,
    /// The token, for `token`.
    pub token: Option<Secret>,
    /// The NKey seed (`SU...`), for `nkey`.
    pub nkey_seed: Option<Secret>,
    /// The `.creds` file, for `credentials_file`; a relative path is
    /// relative to the config file.
    pub credentials_file: Option<PathBuf>,
}

/// How a NATS component authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NatsAuthStrategy {
    /// A user name and password.
    UserPassword,
    /// A token.
    Token,
    /// An NKey seed.
    Nkey,
    /// A `.creds` file (JWT and NKey seed).
    CredentialsFile,
}

/// TLS towards a NATS server, through rustls.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// The CA certificate(s) (PEM) that signed the server's certificate,
    /// when it is not signed by a CA the system trusts; a relative path is
    /// relative to the config file.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM), for servers that verify clients; with
    /// `tls.key_file`.
    pub crt_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
}

/// Credentials in their checked form.
#[derive(Clone)]
enum Credentials {
    None,
    UserPassword(String, Secret),
    Token(Secret),
    Nkey(Secret),
    File(PathBuf),
}

impl Credentials {
    /// Whether both authenticate alike (`Secret` has no `==`, so that
    /// comparing one is never done by accident).
    fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::None, Self::None) => true,
            (Self::UserPassword(user, password), Self::UserPassword(user2, password2)) => {
                user == user2 && password.expose() == password2.expose()
            }
            (Self::Token(a), Self::Token(b)) | (Self::Nkey(a), Self::Nkey(b)) => {
                a.expose() == b.expose()
            }
            (Self::File(a), Self::File(b)) => a == b,
            _ => false,
        }
    }
}

/// A checked connection, ready to connect (built without any I/O).
#[derive(Clone)]
pub struct Connector {
    /// The component, for logs and errors.
    component: String,
    servers: Vec<ServerAddr>,
    /// The URLs as written (they hold no credentials), for messages.
    shown: String,
    credentials: Credentials,
    tls: Option<TlsFiles>,
}

/// TLS files with their paths resolved: the CA, and a client certificate
/// with its key.
#[derive(Clone, PartialEq, Eq)]
struct TlsFiles {
    ca: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("servers", &self.shown)
            .finish_non_exhaustive()
    }
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectFailure {
    /// The server could not be reached or refused us; worth retrying.
    #[error("{component}: cannot connect to NATS at {servers}: {cause}")]
    Unreachable {
        /// The component.
        component: String,
        /// The servers tried.
        servers: String,
        /// Why.
        cause: String,
    },
    /// The server refused our credentials, or TLS could not be set up:
    /// trying again with the same settings cannot help.
    #[error(
        "{component}: cannot connect to NATS at {servers}, and trying again cannot help: {cause}"
    )]
    Refused {
        /// The component.
        component: String,
        /// The servers tried.
        servers: String,
        /// Why.
        cause: String,
    },
    /// The server is too old (or says no version): not worth retrying.
    #[error(
        "{component}: the NATS server at {servers} is version {version}; howl needs 2.9.0 or newer"
    )]
    TooOld {
        /// The component.
        component: String,
        /// The servers tried.
        servers: String,
        /// What it said.
        version: String,
    },
    /// The credentials file could not be read.
    #[error("{component}: cannot read `auth.credentials_file` {path}: {cause}")]
    CredentialsFile {
        /// The component.
        component: String,
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
}

impl NatsConnection {
    /// Checks the options: URLs, the auth strategy's keys, TLS files
    /// (their paths resolved against the config file).
    pub fn connector(&self, cx: &BuildContext) -> Result<Connector, BuildError> {
        self.connector_for(&cx.key.to_string(), |path| cx.resolve_path(path))
    }

    /// [`Self::connector`] for what is not a component (the shared state
    /// of `[state.shared.nats]`): `owner` names it in logs and errors, and
    /// `resolve` turns a relative file path into one howl can open.
    pub fn connector_for(
        &self,
        owner: &str,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<Connector, BuildError> {
        let mut servers = Vec::new();
        for part in self.url.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(BuildError::new(
                    "`url` names no server: write e.g. nats://127.0.0.1:4222",
                )
                .for_option("url"));
            }
            let server: ServerAddr = part.parse().map_err(|error| {
                BuildError::new(format!("`url` is not a NATS URL ({error})")).for_option("url")
            })?;
            // `nats://:secret@host` has no user but a password all the same.
            if server.has_user_pass() || server.password().is_some() {
                return Err(BuildError::new(
                    "`url` holds credentials: put them in `auth.*`, which are kept out of logs",
                )
                .for_option("url"));
            }
            servers.push(server);
        }
        let credentials = match &self.auth {
            None => Credentials::None,
            Some(auth) => auth.credentials(&resolve)?,
        };
        let tls = match &self.tls {
            None => None,
            Some(tls) => {
                let client = match (&tls.crt_file, &tls.key_file) {
                    (Some(crt), Some(key)) => Some((resolve(crt), resolve(key))),
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(BuildError::new(
                            "`tls.crt_file` needs `tls.key_file` (the certificate's private key)",
                        )
                        .for_option("tls.key_file"));
                    }
                    (None, Some(_)) => {
                        return Err(BuildError::new(
                            "`tls.key_file` needs `tls.crt_file` (the client certificate)",
                        )
                        .for_option("tls.crt_file"));
                    }
                };
                let ca = tls.ca_file.as_deref().map(&resolve);
                for path in ca.iter().chain(client.iter().flat_map(|(c, k)| [c, k])) {
                    if !path.is_file() {
                        return Err(BuildError::new(format!(
                            "TLS file {} does not exist",
                            path.display()
                        ))
                        .for_option("tls"));
                    }
                }
                Some(TlsFiles { ca, client })
            }
        };
        Ok(Connector {
            component: owner.to_string(),
            servers,
            shown: self.url.clone(),
            credentials,
            tls,
        })
    }
}

impl NatsAuth {
    fn credentials(&self, resolve: impl Fn(&Path) -> PathBuf) -> Result<Credentials, BuildError> {
        let wanted: &[&str] = match self.strategy {
            NatsAuthStrategy::UserPassword => &["user", "password"],
            NatsAuthStrategy::Token => &["token"],
            NatsAuthStrategy::Nkey => &["nkey_seed"],
            NatsAuthStrategy::CredentialsFile => &["credentials_file"],
        };
        let set = [
            ("user", self.user.is_some()),
            ("password", self.password.is_some()),
            ("token", self.token.is_some()),
            ("nkey_seed", self.nkey_seed.is_some()),
            ("credentials_file", self.credentials_file.is_some()),
        ];
        for (key, present) in set {
            let needed = wanted.contains(&key);
            if needed && !present {
                return Err(BuildError::new(format!(
                    "`auth.strategy = \"{}\"` needs `auth.{key}`",
                    self.strategy.name()
                ))
                .for_option("auth.strategy"));
            }
            if !needed && present {
                return Err(BuildError::new(format!(
                    "`auth.{key}` does not belong to `auth.strategy = \"{}\"`",
                    self.strategy.name()
                ))
                .for_option(format!("auth.{key}")));
            }
        }
        Ok(
            match (
                &self.user,
                &self.password,
                &self.token,
                &self.nkey_seed,
                &self.credentials_file,
            ) {
                (Some(user), Some(password), _, _, _) => {
                    Credentials::UserPassword(user.clone(), password.clone())
                }
                (_, _, Some(token), _, _) => Credentials::Token(token.clone()),
                (_, _, _, Some(seed), _) => Credentials::Nkey(seed.clone()),
                (_, _, _, _, Some(path)) => Credentials::File(resolve(path)),
                _ => Credentials::None,
            },
        )
    }
}

impl NatsAuthStrategy {
    fn name(self) -> &'static str {
        match self {
            Self::UserPassword => "user_password",
            Self::Token => "token",
            Self::Nkey => "nkey",
            Self::CredentialsFile => "credentials_file",
        }
    }
}

impl Connector {
    /// The servers, as written in `url`.
    pub fn servers(&self) -> &str {
        &self.shown
    }

    /// The options (`url`, `auth`, `tls`) by which `other` connects
    /// differently: a reload cannot change a connection made at start, and
    /// must say so rather than report a new password as applied. Secrets
    /// are compared, never shown.
    pub fn changed_options(&self, other: &Connector) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.shown != other.shown {
            changed.push("url");
        }
        if !self.credentials.same_as(&other.credentials) {
            changed.push("auth");
        }
        if self.tls != other.tls {
            changed.push("tls");
        }
        changed
    }

    /// Connects once, checks the server's version and logs it. The client
    /// then reconnects by itself after a connection is lost (logged as it
    /// happens); what was not acknowledged meanwhile is the components'
    /// business.
    pub async fn connect(&self) -> Result<Client, ConnectFailure> {
        let component = self.component.clone();
        let mut options = ConnectOptions::new()
            .name(format!("howl {}", self.component))
            .event_callback(move |event| {
                let component = component.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!(%component, "NATS connection (re)established");
                        }
                        other => tracing::warn!(%component, "NATS connection: {other}"),
                    }
                }
            });
        options = match &self.credentials {
            Credentials::None => options,
            Credentials::UserPassword(user, password) => {
                options.user_and_password(user.clone(), password.expose().to_string())
            }
            Credentials::Token(token) => options.token(token.expose().to_string()),
            Credentials::Nkey(seed) => options.nkey(seed.expose().to_string()),
            Credentials::File(path) => options.credentials_file(path).await.map_err(|error| {
                ConnectFailure::CredentialsFile {
                    component: self.component.clone(),
                    path: path.display().to_string(),
                    cause: error.to_string(),
                }
            })?,
        };
        if let Some(TlsFiles { ca, client }) = &self.tls {
            options = options.require_tls(true);
            if let Some(ca) = ca {
                options = options.add_root_certificates(ca.clone());
            }
            if let Some((crt, key)) = client {
                options = options.add_client_certificate(crt.clone(), key.clone());
            }
        }
        let client = options
            .connect(self.servers.as_slice())
            .await
            .map_err(|error| {
                let (component, servers) = (self.component.clone(), self.shown.clone());
                let cause = crate::http::error_chain(&error);
                let refused = matches!(
                    error.kind(),
                    ConnectErrorKind::AuthorizationViolation
                        | ConnectErrorKind::Authentication
                        | ConnectErrorKind::Tls
                ) || certificate_refused(&error);
                match refused {
                    true => ConnectFailure::Refused {
                        component,
                        servers,
                        cause,
                    },
                    false => ConnectFailure::Unreachable {
                        component,
                        servers,
                        cause,
                    },
                }
            })?;
        let info = client.server_info();
        if !version_supported(&info.version) {
            return Err(ConnectFailure::TooOld {
                component: self.component.clone(),
                servers: self.shown.clone(),
                version: info.version,
            });
        }
        tracing::info!(
            component = %self.component,
            server = %self.shown,
            server_version = %info.version,
            jetstream = info.jetstream,
            "connected to NATS"
        );
        Ok(client)
    }

    /// Connects, retrying unreachable servers with the backoff of `retry`
    /// (without giving up: a component without its server can do nothing
    /// else) until `stop` is cancelled (`None` then). Refused credentials,
    /// a failed TLS setup and a server that is too old are errors at once.
    pub async fn connect_retrying(
        &self,
        retry: &RetryPolicy,
        stop: &CancellationToken,
    ) -> Result<Option<Client>, ConnectFailure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.connect().await {
                Ok(client) => return Ok(Some(client)),
                Err(failure @ ConnectFailure::Unreachable { .. }) => {
                    let wait = retry.backoff(attempt).max(Duration::from_millis(100));
                    tracing::warn!(
                        "{failure}; retrying in {:.1}s (attempt {attempt})",
                        wait.as_secs_f64()
                    );
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(failure) => return Err(failure),
            }
        }
    }
}

/// Whether TLS failed on a certificate (the server's is not trusted, or
/// ours was refused): the client reports it as an I/O error, with rustls'
/// error inside.
fn certificate_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::AlertReceived(_)
            );
        }
        next = error.source();
    }
    false
}

/// Whether a server version (`2.9.10`, `2.10.0-beta.1`) is at least
/// [`MIN_SERVER`]. A version that does not parse is refused: it says
/// nothing about what the server supports.
fn version_supported(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|part| part.parse::<u64>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) => {
            (major, minor, patch) >= MIN_SERVER
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_from_2_9_are_supported() {
        for (version, supported) in [
            ("2.9.0", true),
            ("2.9.10", true),
            ("2.10.0-beta.3", true),
            ("3.0.0", true),
            ("2.8.4", false),
            ("1.4.1", false),
            ("", false),
            ("2.x.1", false),
        ] {
            assert_eq!(version_supported(version), supported, "{version}");
        }
    }

    fn connector(options: &str) -> Result<Connector, BuildError> {
        let connection: NatsConnection = toml::from_str(options).expect("options parse");
        let cx = BuildContext {
            key: crate::component_key::ComponentKey::new(
                crate::component_key::ComponentKind::Sink,
                "out",
                "nats",
            ),
            file: std::sync::Arc::new(crate::diagnostic::SourceFile::new(
                std::path::PathBuf::from("t.toml"),
                options.to_string(),
            )),
            data_dir: std::env::temp_dir(),
        };
        connection.connector(&cx)
    }

    #[test]
    fn credentials_stay_out_of_urls_and_strategies_take_only_their_keys() {
        let in_url = connector("url = \"nats://me:s3cret@127.0.0.1:4222\"").unwrap_err();
        assert_eq!(in_url.option.as_deref(), Some("url"));
        assert!(!in_url.message.contains("s3cret"), "{}", in_url.message);
        let password_only = connector("url = \"nats://:s3cret@127.0.0.1:4222\"").unwrap_err();
        assert_eq!(password_only.option.as_deref(), Some("url"));
        let token_as_user = connector("url = \"nats://s3cret@127.0.0.1:4222\"").unwrap_err();
        assert_eq!(token_as_user.option.as_deref(), Some("url"));
        let missing = connector(
            "url = \"nats://h:4222\"\nauth = { strategy = \"user_password\", user = \"u\" }",
        )
        .unwrap_err();
        assert!(
            missing.message.contains("auth.password"),
            "{}",
            missing.message
        );
        let foreign = connector(
            "url = \"nats://h:4222\"\nauth = { strategy = \"token\", token = \"t\", user = \"u\" }",
        )
        .unwrap_err();
        assert_eq!(foreign.option.as_deref(), Some("auth.user"));
        let several = connector("url = \"nats://a:4222, nats://b:4222\"").unwrap();
        assert_eq!(several.servers.len(), 2);
        assert!(connector("url = \"nats://a:4222,\"").is_err());
    }
}
