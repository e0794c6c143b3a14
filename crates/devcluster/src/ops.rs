//! Writes to the API server, each one reflected in the local cache at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::Client;
use serde_json::{json, Value};

use crate::world::{key_of, str_at, Kind, World};

#[derive(Clone)]
pub struct Ops {
    pub client: Client,
    pub world: Arc<World>,
    /// The component named in Events (`kubelet`, `replicaset-controller`, ...) is per call;
    /// this remembers which (object UID, reason, message) were reported, so each is sent once.
    reported: Arc<Mutex<HashSet<(String, String, String)>>>,
}

impl Ops {
    pub fn new(client: Client, world: Arc<World>) -> Self {
        Self {
            client,
            world,
            reported: Arc::default(),
        }
    }

    fn ns(obj: &Value) -> Option<&str> {
        Some(str_at(obj, "/metadata/namespace")).filter(|n| !n.is_empty())
    }

    pub async fn create(&self, kind: Kind, obj: Value) -> anyhow::Result<Value> {
        let ns = Self::ns(&obj).map(str::to_string);
        let api = kind.api(&self.client, ns.as_deref());
        let mut obj = obj;
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind());
        let dynamic: DynamicObject = serde_json::from_value(obj)?;
        let created = api.create(&PostParams::default(), &dynamic).await?;
        let v = self.reflect(kind, created)?;
        Ok(v)
    }

    fn reflect(&self, kind: Kind, o: DynamicObject) -> anyhow::Result<Value> {
        let mut v = serde_json::to_value(o)?;
        v["apiVersion"] = json!(kind.api_version());
        v["kind"] = json!(kind.kind());
        self.world.put(kind, v.clone());
        Ok(v)
    }

    /// A JSON merge patch of the object (`status` false) or of its status subresource.
    pub async fn merge(
        &self,
        kind: Kind,
        obj: &Value,
        patch: Value,
        status: bool,
    ) -> anyhow::Result<Value> {
        let api = kind.api(&self.client, Self::ns(obj));
        let name = str_at(obj, "/metadata/name");
        let params = PatchParams::default();
        let patched = if status {
            api.patch_status(name, &params, &Patch::Merge(&patch))
                .await?
        } else {
            api.patch(name, &params, &Patch::Merge(&patch)).await?
        };
        self.reflect(kind, patched)
    }

    /// Deletes the object (this very UID), with a grace period if given; background
    /// propagation, as controllers delete their pods.
    pub async fn delete(&self, kind: Kind, obj: &Value, grace: Option<u32>) -> anyhow::Result<()> {
        let api = kind.api(&self.client, Self::ns(obj));
        let name = str_at(obj, "/metadata/name");
        let params = DeleteParams {
            grace_period_seconds: grace,
            preconditions: Some(Preconditions {
                uid: Some(str_at(obj, "/metadata/uid").to_string()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(name, &params).await {
            Ok(either) => {
                match either.left() {
                    Some(o) if o.metadata.deletion_timestamp.is_some() => {
                        self.reflect(kind, o)?;
                    }
                    _ => self.world.remove(kind, &key_of(obj)),
                }
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                self.world.remove(kind, &key_of(obj));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records an Event about `obj` once per (object, reason, message).
    pub async fn event(&self, obj: &Value, component: &str, ty: &str, reason: &str, message: &str) {
        let uid = str_at(obj, "/metadata/uid").to_string();
        if !self.reported.lock().unwrap().insert((
            uid.clone(),
            reason.to_string(),
            message.to_string(),
        )) {
            return;
        }
        let ns = Self::ns(obj).unwrap_or("default").to_string();
        let now = chrono::Utc::now();
        let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let name = format!(
            "{}.{:x}",
            str_at(obj, "/metadata/name"),
            now.timestamp_nanos_opt().unwrap_or_default()
        );
        let event = json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion").cloned().unwrap_or(Value::Null),
                "kind": obj.get("kind").cloned().unwrap_or(Value::Null),
                "name": str_at(obj, "/metadata/name"),
                "namespace": ns,
                "uid": uid,
                "resourceVersion": str_at(obj, "/metadata/resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": ty,
            "source": {"component": component, "host": crate::NODE_NAME},
            "reportingComponent": component,
            "reportingInstance": crate::NODE_NAME,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        });
        let api = kube::Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            &ns,
            &kube::api::ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Event".into(),
                plural: "events".into(),
            },
        );
        let mut event = event;
        event["apiVersion"] = json!("v1");
        event["kind"] = json!("Event");
        if let Ok(dynamic) = serde_json::from_value::<DynamicObject>(event) {
            if let Err(error) = api.create(&PostParams::default(), &dynamic).await {
                tracing::debug!(%error, reason, "recording an event failed");
            }
        }
    }
}

/// An owner reference making `owner` the controller of a new object.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": str_at(owner, "/metadata/name"),
        "uid": str_at(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// An RFC 3339 timestamp with second precision, as Kubernetes writes them.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
