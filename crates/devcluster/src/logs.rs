//! Container output as the node keeps it: one file per container instance under the node's
//! directory, read by `pods/{name}/log` requests (current or previous instance, tail, limit,
//! follow).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// One container instance's log file; `done` once the instance ended.
#[derive(Clone, Debug)]
pub struct LogFile {
    pub path: PathBuf,
    pub done: Arc<AtomicBool>,
}

#[derive(Default, Debug)]
struct Record {
    uid: String,
    current: Option<LogFile>,
    previous: Option<LogFile>,
}

/// `(namespace, pod, container)`
type Key = (String, String, String);

/// The logs of every container instance on the node.
#[derive(Default, Debug)]
pub struct LogStore {
    records: Mutex<HashMap<Key, Record>>,
}

/// What a reader asks for.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    pub previous: bool,
    pub follow: bool,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
}

impl LogStore {
    /// A new instance of a container starts writing to `file`; the one before becomes the
    /// previous instance.
    pub fn started(&self, ns: &str, pod: &str, uid: &str, container: &str, file: LogFile) {
        let mut records = self.records.lock().unwrap();
        let rec = records
            .entry((ns.into(), pod.into(), container.into()))
            .or_default();
        if rec.uid != uid {
            *rec = Record {
                uid: uid.into(),
                ..Record::default()
            };
        }
        rec.previous = rec.current.replace(file);
    }

    /// Forgets a pod's logs (it is gone).
    pub fn forget(&self, ns: &str, pod: &str, uid: &str) {
        self.records
            .lock()
            .unwrap()
            .retain(|(n, p, _), rec| !(n == ns && p == pod && rec.uid == uid));
    }

    /// Streams the requested log, or `None` without a record of that instance.
    pub fn open(&self, q: &LogQuery) -> Option<mpsc::Receiver<Bytes>> {
        let file = {
            let records = self.records.lock().unwrap();
            let rec = records.get(&(q.namespace.clone(), q.pod.clone(), q.container.clone()))?;
            if !q.uid.is_empty() && rec.uid != q.uid {
                return None;
            }
            if q.previous {
                rec.previous.clone()?
            } else {
                rec.current.clone()?
            }
        };
        let (tx, rx) = mpsc::channel(16);
        let q = q.clone();
        tokio::spawn(async move {
            let _ = stream(file, q, tx).await;
        });
        Some(rx)
    }
}

/// The bytes of `content` that `tail_lines` keeps.
fn tail(content: &[u8], lines: i64) -> &[u8] {
    if lines <= 0 {
        return &[];
    }
    let mut seen = 0;
    // A final newline ends the last line rather than starting an empty one.
    let end = content.len().saturating_sub(1);
    for i in (0..end).rev() {
        if content[i] == b'\n' {
            seen += 1;
            if seen == lines {
                return &content[i + 1..];
            }
        }
    }
    content
}

async fn stream(file: LogFile, q: LogQuery, tx: mpsc::Sender<Bytes>) -> std::io::Result<()> {
    let mut budget = q.limit_bytes.filter(|l| *l > 0).map(|l| l as usize);
    fn take(budget: &mut Option<usize>, chunk: &[u8]) -> Option<Bytes> {
        let n = budget.map_or(chunk.len(), |b| b.min(chunk.len()));
        if let Some(b) = budget.as_mut() {
            *b -= n;
        }
        (n > 0).then(|| Bytes::copy_from_slice(&chunk[..n]))
    }
    let mut f = match tokio::fs::File::open(&file.path).await {
        Ok(f) => f,
        Err(_) => return Ok(()),
    };
    let mut content = Vec::new();
    f.read_to_end(&mut content).await?;
    let mut offset = content.len() as u64;
    let first = match q.tail_lines {
        Some(n) => tail(&content, n),
        None => &content[..],
    };
    if let Some(b) = take(&mut budget, first) {
        if tx.send(b).await.is_err() {
            return Ok(());
        }
    }
    if !q.follow {
        return Ok(());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if budget == Some(0) || tx.is_closed() {
            return Ok(());
        }
        let finished = file.done.load(Ordering::Acquire);
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let n = f.read(&mut buf).await?;
        if n > 0 {
            offset += n as u64;
            if let Some(b) = take(&mut budget, &buf[..n]) {
                if tx.send(b).await.is_err() {
                    return Ok(());
                }
            }
            continue;
        }
        if finished {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), b"c");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }
}
