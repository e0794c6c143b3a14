//! Watch streams: `200 OK`, chunked, one JSON event per line, each flushed as it happens.
//!
//! A task per watch moves events from the store's channel to the response body:
//!
//! ```text
//! Store::watch ─(bounded)─► pump task ─(bounded, 16)─► ChannelBody ─► client
//!                              │ ends on: timeoutSeconds, ERROR event, store closing the
//!                              │ channel, client gone (body dropped), server shutdown
//!                              └ adds a BOOKMARK about once a minute when asked to
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::media::TABLE_CONTENT_TYPE;
use super::{AppState, Body, ChannelBody};
use crate::error::Result;
use crate::metrics::RequestInfo;
use crate::model::ResourceType;
use crate::store::{WatchEvent, WatchEventType, WatchOptions};
use crate::table::{self, IncludeObject};

/// How events' objects are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventShape {
    Object,
    Table(IncludeObject),
    Metadata,
}

/// Lines buffered between the pump task and the connection. Small: a slow client should make
/// the store's own bounded channel fill, so the store drops the watcher and the client relists.
const BODY_BUFFER: usize = 16;

/// Interval between periodic bookmarks (kube-apiserver sends them about once a minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Starts a watch and returns the streaming response.
pub(super) fn serve(
    state: &Arc<AppState>,
    rt: Arc<ResourceType>,
    namespace: Option<&str>,
    opts: WatchOptions,
    timeout_seconds: Option<u64>,
    shape: EventShape,
    info: &RequestInfo,
) -> Result<Response<Body>> {
    let resuming = !opts.send_initial_events
        && !matches!(
            opts.resource_version.as_deref(),
            None | Some("") | Some("0")
        );
    let events = if resuming && state.faults.watch_gone() {
        expired_now(opts.resource_version.as_deref().unwrap_or_default())
    } else {
        state.store.watch(&rt, namespace, &opts)?
    };
    // Without a client timeout, end after 30 to 60 minutes, as kube-apiserver does.
    let mut timeout = Duration::from_secs(
        timeout_seconds.unwrap_or_else(|| rand::rng().random_range(1800..3600)),
    );
    // Fault injection may cut the stream sooner.
    let mut cut = None;
    if let Some(every) = state.faults.watch_close_after() {
        if every < timeout {
            timeout = every;
            cut = Some((Arc::clone(&state.faults), Instant::now() + every));
        }
    }
    let (tx, rx) = mpsc::channel(BODY_BUFFER);
    let guard = state.metrics.watch_started(info, &rt.kind);
    let start_rv = opts
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse::<u64>().ok())
        .filter(|rv| *rv > 0);
    let pump = Pump {
        rt,
        shape,
        events,
        tx,
        deadline: Instant::now() + timeout,
        bookmarks: opts.allow_bookmarks,
        last_rv: start_rv,
        table_headers_sent: false,
        shutdown: state.shutdown.clone(),
    };
    tokio::spawn(async move {
        pump.run().await;
        drop(guard);
        if let Some((faults, at)) = cut {
            if Instant::now() >= at {
                faults.watch_cut();
            }
        }
    });
    let content_type = match shape {
        EventShape::Table(_) => TABLE_CONTENT_TYPE,
        _ => "application/json",
    };
    let mut resp = Response::new(ChannelBody::new(rx).boxed());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

/// A watch that gets only a `410 Expired` ERROR event, as for a resourceVersion compacted
/// away (an injected fault).
fn expired_now(rv: &str) -> mpsc::Receiver<WatchEvent> {
    let status =
        crate::error::ApiError::expired(format!("too old resource version: {rv} (injected fault)"))
            .to_status();
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(WatchEvent {
        kind: WatchEventType::Error,
        object: Bytes::from(status.to_string()),
    });
    rx
}

struct Pump {
    rt: Arc<ResourceType>,
    shape: EventShape,
    events: mpsc::Receiver<WatchEvent>,
    tx: mpsc::Sender<Bytes>,
    deadline: Instant,
    bookmarks: bool,
    /// The newest resourceVersion the client has seen everything up to.
    last_rv: Option<u64>,
    /// Whether a Table with column definitions was sent already.
    table_headers_sent: bool,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Pump {
    /// Sends a line; false when the watch is over instead (client gone, or the timeout or
    /// shutdown came while a client that stopped reading kept the buffer full).
    async fn send(&self, line: Bytes) -> bool {
        tokio::select! {
            sent = self.tx.send(line) => sent.is_ok(),
            _ = self.shutdown.cancelled() => false,
            _ = sleep_until(self.deadline) => false,
        }
    }

    async fn run(mut self) {
        let mut next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = sleep_until(self.deadline) => return,
                _ = self.tx.closed() => return,
                _ = sleep_until(next_bookmark), if self.bookmarks => {
                    next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    if let Some(rv) = self.last_rv {
                        let line = bookmark_line(&self.rt, rv);
                        if !self.send(line).await {
                            return;
                        }
                    }
                }
                ev = self.events.recv() => {
                    let Some(ev) = ev else { return };
                    let end = ev.kind == WatchEventType::Error;
                    if ev.kind == WatchEventType::Bookmark {
                        next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    }
                    if let Some(rv) = event_rv(&ev.object) {
                        self.last_rv = Some(self.last_rv.map_or(rv, |l| l.max(rv)));
                    }
                    let line = event_line(&self.rt, self.shape, &ev, !self.table_headers_sent);
                    if matches!(ev.kind, WatchEventType::Added | WatchEventType::Modified | WatchEventType::Deleted) {
                        self.table_headers_sent = true;
                    }
                    if !self.send(line).await || end {
                        return;
                    }
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct RvOnly {
    metadata: Option<RvMeta>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RvMeta {
    resource_version: Option<String>,
}

fn event_rv(object: &[u8]) -> Option<u64> {
    let o: RvOnly = serde_json::from_slice(object).ok()?;
    o.metadata?.resource_version?.parse().ok()
}

fn bookmark_line(rt: &ResourceType, rv: u64) -> Bytes {
    let ev = json!({
        "type": "BOOKMARK",
        "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}},
    });
    let mut line = serde_json::to_vec(&ev).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// One event as a newline-terminated JSON line. Tables carry their column definitions only
/// when `table_headers` is set (the first object event of a watch, as kube-apiserver does).
pub(super) fn event_line(
    rt: &ResourceType,
    shape: EventShape,
    ev: &WatchEvent,
    table_headers: bool,
) -> Bytes {
    let object_event = matches!(
        ev.kind,
        WatchEventType::Added | WatchEventType::Modified | WatchEventType::Deleted
    );
    let rewrite = rt.custom && rt.version != rt.storage_version;
    let object: Option<Value> = match shape {
        _ if !object_event => None,
        EventShape::Object if !rewrite => None,
        _ => {
            let mut v: Value = serde_json::from_slice(&ev.object).unwrap_or(Value::Null);
            if rewrite && v.is_object() {
                v["apiVersion"] = json!(rt.api_version());
            }
            Some(match shape {
                EventShape::Object => v,
                EventShape::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
                EventShape::Table(include) => {
                    let rv = v.pointer("/metadata/resourceVersion").cloned();
                    let mut t = table::of_type(rt, std::slice::from_ref(&v), include);
                    if !table_headers {
                        t["columnDefinitions"] = Value::Null;
                    }
                    if let Some(rv) = rv {
                        t["metadata"]["resourceVersion"] = rv;
                    }
                    t
                }
            })
        }
    };
    let mut line = Vec::with_capacity(ev.object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(ev.kind.as_str().as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    match object {
        Some(v) => line.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default()),
        None => line.extend_from_slice(&ev.object),
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> ResourceType {
        let mut rt = crate::discovery::self_subject_access_review();
        rt.group = "example.com".into();
        rt.plural = "widgets".into();
        rt.kind = "Widget".into();
        rt.custom = true;
        rt.version = "v1".into();
        rt.storage_version = "v1".into();
        rt
    }

    fn ev(kind: WatchEventType, obj: Value) -> WatchEvent {
        WatchEvent {
            kind,
            object: Bytes::from(serde_json::to_vec(&obj).expect("json")),
        }
    }

    #[test]
    fn lines_are_single_json_events() {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "resourceVersion": "12"}});
        let line = event_line(
            &rt(),
            EventShape::Object,
            &ev(WatchEventType::Added, obj.clone()),
            true,
        );
        assert!(line.ends_with(b"\n"));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&line).expect("json line");
        assert_eq!(v, json!({"type": "ADDED", "object": obj}));
        assert_eq!(event_rv(&serde_json::to_vec(&obj).expect("json")), Some(12));
    }

    #[test]
    fn served_version_is_rewritten() {
        let mut r = rt();
        r.version = "v1beta1".into();
        let obj =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        let line = event_line(
            &r,
            EventShape::Object,
            &ev(WatchEventType::Modified, obj),
            true,
        );
        let v: Value = serde_json::from_slice(&line).expect("json line");
        assert_eq!(v["object"]["apiVersion"], "example.com/v1beta1");
    }

    #[test]
    fn metadata_and_error_shapes() {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}});
        let line = event_line(
            &rt(),
            EventShape::Metadata,
            &ev(WatchEventType::Deleted, obj),
            true,
        );
        let v: Value = serde_json::from_slice(&line).expect("json line");
        assert_eq!(
            v["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "w"}})
        );
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired"});
        let line = event_line(
            &rt(),
            EventShape::Metadata,
            &ev(WatchEventType::Error, status.clone()),
            true,
        );
        let v: Value = serde_json::from_slice(&line).expect("json line");
        assert_eq!(v, json!({"type": "ERROR", "object": status}));
    }

    fn pump(
        events: mpsc::Receiver<WatchEvent>,
        tx: mpsc::Sender<Bytes>,
        timeout: Duration,
    ) -> Pump {
        Pump {
            rt: Arc::new(rt()),
            shape: EventShape::Object,
            events,
            tx,
            deadline: Instant::now() + timeout,
            bookmarks: true,
            last_rv: None,
            table_headers_sent: false,
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }

    fn parse(line: &Bytes) -> Value {
        serde_json::from_slice(line).expect("json line")
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_bookmarks_carry_the_last_delivered_version() {
        let (ev_tx, ev_rx) = mpsc::channel(4);
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(pump(ev_rx, tx, Duration::from_secs(150)).run());
        let obj = json!({"kind": "Widget", "metadata": {"name": "w", "resourceVersion": "77"}});
        ev_tx
            .send(ev(WatchEventType::Added, obj))
            .await
            .expect("send");
        assert_eq!(parse(&rx.recv().await.expect("event"))["type"], "ADDED");
        tokio::time::advance(BOOKMARK_INTERVAL + Duration::from_secs(1)).await;
        let bm = parse(&rx.recv().await.expect("bookmark"));
        assert_eq!(bm["type"], "BOOKMARK");
        assert_eq!(bm["object"]["metadata"]["resourceVersion"], "77");
        // The timeout ends the stream: the body channel closes.
        tokio::time::advance(Duration::from_secs(120)).await;
        while let Some(line) = rx.recv().await {
            assert_eq!(parse(&line)["type"], "BOOKMARK");
        }
        task.await.expect("pump ends");
    }

    #[tokio::test(start_paused = true)]
    async fn error_events_end_the_stream_and_disconnects_stop_the_pump() {
        let (ev_tx, ev_rx) = mpsc::channel(4);
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(pump(ev_rx, tx, Duration::from_secs(3600)).run());
        let status = json!({"kind": "Status", "code": 410});
        ev_tx
            .send(ev(WatchEventType::Error, status))
            .await
            .expect("send");
        assert_eq!(parse(&rx.recv().await.expect("error"))["type"], "ERROR");
        assert!(rx.recv().await.is_none());
        task.await.expect("pump ends");

        let (_ev_tx, ev_rx) = mpsc::channel(4);
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(pump(ev_rx, tx, Duration::from_secs(3600)).run());
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("pump notices the client left")
            .expect("join");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_does_not_hold_the_watch_past_its_timeout() {
        let (ev_tx, ev_rx) = mpsc::channel(8);
        let (tx, _rx) = mpsc::channel(1);
        let task = tokio::spawn(pump(ev_rx, tx, Duration::from_secs(10)).run());
        for i in 0..4 {
            let obj = json!({"metadata": {"name": format!("w{i}"), "resourceVersion": "5"}});
            ev_tx
                .send(ev(WatchEventType::Added, obj))
                .await
                .expect("send");
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the pump ends at its deadline")
            .expect("join");
    }

    #[test]
    fn bookmarks_carry_kind_and_version() {
        let v: Value = serde_json::from_slice(&bookmark_line(&rt(), 42)).expect("json line");
        assert_eq!(
            v,
            json!({"type": "BOOKMARK", "object": {"kind": "Widget", "apiVersion": "example.com/v1", "metadata": {"resourceVersion": "42"}}})
        );
    }
}
