//! The server in a child process (`--server-process`): the load generator then shares the
//! cores but not the heap with it, so the child's resident memory is the server's alone.
//!
//! The child is this same binary run with `--serve`. It starts the server, prints one JSON line
//! with the URL, token and CA on stdout, and stops when its stdin closes or its lifetime ends.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;

use crate::client::Target;

/// What the child announces on its first line of stdout.
#[derive(Debug, Serialize, Deserialize)]
struct Announce {
    url: String,
    token: Option<String>,
    ca_pem: Option<String>,
}

/// Runs in the child: serves until stdin closes or `lifetime` passes.
pub async fn serve(lifetime: Duration) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let config = metacontroller_apiserver::ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        tls: true,
    };
    let server = metacontroller_apiserver::start(config, shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!("starting the API server: {e}"))?;
    let announce = Announce {
        url: server.url.clone(),
        token: server.token.clone(),
        ca_pem: server.ca_pem.clone(),
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", serde_json::to_string(&announce)?)?;
        stdout.flush()?;
    }

    // A blocking read on stdin returns 0 once the parent closes it (or exits).
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::time::sleep(lifetime) => eprintln!("apiserver-load --serve: lifetime over, stopping"),
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server.stopped()).await;
    Ok(())
}

/// The parent's handle on the child.
pub struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub pid: u32,
    pub target: Target,
}

impl ChildServer {
    /// Starts the child and waits (at most 30 s) for its announcement.
    pub async fn spawn(lifetime: Duration) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut child = Command::new(exe)
            .arg("--serve")
            .arg("--time-limit-secs")
            .arg(lifetime.as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server process")?;
        let pid = child.id().context("the server process has no id")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let line = tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).lines().next_line(),
        )
        .await
        .context("the server process did not announce itself within 30 s")??
        .context("the server process exited before announcing itself")?;
        let announce: Announce =
            serde_json::from_str(&line).context("parsing the server process announcement")?;
        let target = Target {
            base: announce.url.trim_end_matches('/').to_string(),
            token: announce.token,
            ca_pem: announce.ca_pem,
            insecure: false,
        };
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            stdin,
            pid,
            target,
        })
    }

    /// Closes the child's stdin and waits for it to stop; kills it after 10 s.
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("apiserver-load: the server process did not stop within 10 s; killing it");
            let _ = self.child.kill().await;
        }
    }
}
