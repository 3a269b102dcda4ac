//! A real Alertmanager (Debian's `prometheus-alertmanager`, installed by
//! `scripts/test`) on a loopback port, with a webhook receiver that records
//! every notification it sends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client;

/// The Debian binary name.
pub const BINARY: &str = "prometheus-alertmanager";

/// A running Alertmanager, stopped when dropped.
pub struct Alertmanager {
    child: Option<Child>,
    /// Its base URL.
    pub url: String,
    /// Its port.
    pub port: u16,
    /// Notifications it sent to the webhook receiver (JSON bodies).
    pub notifications: Arc<Mutex<Vec<serde_json::Value>>>,
    dir: PathBuf,
    /// Where its webhook receiver sends notifications.
    hook_url: String,
}

impl Alertmanager {
    /// Starts Alertmanager on `port` with state in `dir`, notifying a
    /// receiver in this test process (group_wait 1 s, group_interval 2 s).
    pub async fn start(dir: &Path, port: u16) -> Self {
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let hook_port = start_receiver(Arc::clone(&notifications)).await;
        let hook_url = format!("http://127.0.0.1:{hook_port}/alert");
        Self::start_notifying(dir, port, hook_url, notifications).await
    }

    /// Starts Alertmanager on `port` sending its notifications to
    /// `hook_url` (howl's `alert_webhook`, say) instead of this process.
    pub async fn start_with_webhook(dir: &Path, port: u16, hook_url: &str) -> Self {
        let none = Arc::new(Mutex::new(Vec::new()));
        Self::start_notifying(dir, port, hook_url.to_string(), none).await
    }

    async fn start_notifying(
        dir: &Path,
        port: u16,
        hook_url: String,
        notifications: Arc<Mutex<Vec<serde_json::Value>>>,
    ) -> Self {
        let mut am = Self {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            port,
            notifications,
            dir: dir.to_path_buf(),
            hook_url,
        };
        am.spawn().await;
        am
    }

    /// Posts alerts to `POST /api/v2/alerts` (a JSON array).
    pub async fn post_alerts(&self, alerts: serde_json::Value) {
        let response = client()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(&alerts)
            .send()
            .await
            .expect("post alerts");
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn spawn(&mut self) {
        let config = self.dir.join("am.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  resolve_timeout: 5m\nroute:\n  receiver: hook\n  group_by: ['alertname', 'pattern_id']\n  \
                 group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
                 webhook_configs:\n      - url: '{}'\n        send_resolved: true\n",
                self.hook_url
            ),
        )
        .expect("write am.yml");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", self.dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg(format!("--web.external-url={}", self.url))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("am.log")).expect("am.log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {BINARY} ({e}); install it with `apt-get install prometheus-alertmanager` (scripts/test does)")
            });
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(r) = client().get(format!("{}/-/ready", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("Alertmanager did not become ready at {}", self.url);
    }

    /// Stops it (alerts are lost: it keeps them in memory only).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// `GET /api/v2/alerts` (active, silenced and inhibited alerts).
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        match client()
            .get(format!("{}/api/v2/alerts", self.url))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Polls (bounded) until `check` accepts the alert list; returns it.
    pub async fn wait_for_alerts(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let alerts = self.alerts().await;
            if check(&alerts) {
                return alerts;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; alerts now: {alerts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a silence; returns its id.
    pub async fn silence(&self, name: &str, value: &str) -> String {
        let now = chrono::Utc::now();
        let body = serde_json::json!({
            "matchers": [{"name": name, "value": value, "isRegex": false, "isEqual": true}],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "createdBy": "howl tests",
            "comment": "test",
        });
        let response: serde_json::Value = client()
            .post(format!("{}/api/v2/silences", self.url))
            .json(&body)
            .send()
            .await
            .expect("post silence")
            .json()
            .await
            .expect("silence answer");
        response["silenceID"]
            .as_str()
            .expect("silenceID")
            .to_string()
    }

    /// The notifications received so far.
    pub fn notified(&self) -> Vec<serde_json::Value> {
        self.notifications.lock().unwrap().clone()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A webhook receiver on a free loopback port.
async fn start_receiver(store: Arc<Mutex<Vec<serde_json::Value>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let port = listener
        .local_addr()
        .map(|a: SocketAddr| a.port())
        .expect("port");
    let router = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let store = Arc::clone(&store);
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}
