//! A real Prometheus server (Debian's `prometheus`, installed by
//! `scripts/test`) on a loopback port, scraping itself every second.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{client, free_port};

/// The Debian binary name.
pub const BINARY: &str = "prometheus";

/// A running Prometheus, stopped when dropped.
pub struct Prometheus {
    child: Child,
    /// Its base URL.
    pub url: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with its data in `dir`, scraping itself (job
    /// `prometheus`) every second, and waits until it is ready.
    pub async fn start(dir: &Path) -> Self {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{port}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("prometheus.log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {BINARY} ({e}); install it with `apt-get install prometheus` (scripts/test does)")
            });
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        for _ in 0..200 {
            if let Ok(r) = client()
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                && r.status().is_success()
            {
                return prometheus;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "Prometheus did not become ready at {}:\n{}",
            prometheus.url,
            prometheus.log()
        );
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
