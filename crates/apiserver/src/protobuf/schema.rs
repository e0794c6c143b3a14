//! Message descriptions for the Kubernetes kinds whose protobuf bodies are decoded.
//!
//! Each [`Message`] lists its fields in the order of the Go struct (which is the order of the
//! JSON encoding), with the field number of Kubernetes' `generated.proto`, the JSON name and how
//! Go's JSON encoding treats an empty value. Deprecated in-tree cloud volume sources and
//! alpha-only fields are left out; the decoder skips fields it does not know.

use Card::*;
use Ty::*;

/// A protobuf message and the JSON object it becomes.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
}

/// One field of a [`Message`].
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) number: u32,
    pub(crate) json: &'static str,
    pub(crate) ty: Ty,
    pub(crate) card: Card,
}

/// What a field holds and how it is rendered as JSON.
#[derive(Debug)]
pub(crate) enum Ty {
    Str,
    Bool,
    I32,
    I64,
    Msg(&'static Message),
    /// An embedded Go struct whose fields are inlined into the parent's JSON object.
    Inline(&'static Message),
    /// `metav1.Time`: seconds and nanos, rendered as RFC 3339 with second precision.
    Time,
    /// `metav1.MicroTime`, rendered as RFC 3339 with microseconds.
    MicroTime,
    /// `resource.Quantity`, rendered as its string form.
    Quantity,
    /// `intstr.IntOrString`, rendered as a number or a string.
    IntOrString,
    /// `metav1.FieldsV1`: raw JSON bytes.
    FieldsV1,
    MapStr,
    MapBytes,
    MapQuantity,
    MapTime,
    /// `map[string][]string` (values are `{items}` messages).
    MapStrList,
}

/// How Go's JSON encoding treats the field when it holds the zero value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    /// No `omitempty`: always rendered, the zero value when absent.
    Req,
    /// `omitempty` on a value field: left out when zero.
    Omit,
    /// A pointer: rendered whenever present on the wire, even when zero.
    Ptr,
    /// A slice or map with `omitempty`: rendered when non-empty.
    Rep,
    /// A slice or map without `omitempty`: `null` when empty.
    RepNull,
}

impl Card {
    /// Whether the field is a slice or a map.
    pub(crate) fn is_repeated(self) -> bool {
        matches!(self, Card::Rep | Card::RepNull)
    }
}

const fn fld(number: u32, json: &'static str, ty: Ty, card: Card) -> Field {
    Field {
        number,
        json,
        ty,
        card,
    }
}

/// The top-level kinds that can be decoded, by API version and kind.
static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("v1", "Service", &SERVICE),
    ("v1", "ResourceQuota", &RESOURCE_QUOTA),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("batch/v1", "Job", &JOB),
    ("batch/v1", "CronJob", &CRON_JOB),
    ("rbac.authorization.k8s.io/v1", "Role", &ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", &CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", &ROLE_BINDING),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &CLUSTER_ROLE_BINDING,
    ),
    ("scheduling.k8s.io/v1", "PriorityClass", &PRIORITY_CLASS),
    ("policy/v1", "PodDisruptionBudget", &POD_DISRUPTION_BUDGET),
    ("policy/v1", "Eviction", &EVICTION),
    ("networking.k8s.io/v1", "Ingress", &INGRESS),
    ("authentication.k8s.io/v1", "TokenRequest", &TOKEN_REQUEST),
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &SELF_SUBJECT_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &SELF_SUBJECT_ACCESS_REVIEW,
    ),
    ("coordination.k8s.io/v1", "Lease", &LEASE),
];

/// The description of a top-level kind, if it is supported.
pub(crate) fn lookup(api_version: &str, kind: &str) -> Option<&'static Message> {
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, m)| *m)
}

/// Every supported `(apiVersion, kind)`.
pub(crate) fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    KINDS.iter().map(|(v, k, _)| (*v, *k))
}

static OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        fld(5, "apiVersion", Str, Req),
        fld(1, "kind", Str, Req),
        fld(3, "name", Str, Req),
        fld(4, "uid", Str, Req),
        fld(6, "controller", Bool, Ptr),
        fld(7, "blockOwnerDeletion", Bool, Ptr),
    ],
};
static MANAGED_FIELDS_ENTRY: Message = Message {
    name: "ManagedFieldsEntry",
    fields: &[
        fld(1, "manager", Str, Omit),
        fld(2, "operation", Str, Omit),
        fld(3, "apiVersion", Str, Omit),
        fld(4, "time", Time, Ptr),
        fld(6, "fieldsType", Str, Omit),
        fld(7, "fieldsV1", FieldsV1, Ptr),
        fld(8, "subresource", Str, Omit),
    ],
};
static OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        fld(1, "name", Str, Omit),
        fld(2, "generateName", Str, Omit),
        fld(3, "namespace", Str, Omit),
        fld(4, "selfLink", Str, Omit),
        fld(5, "uid", Str, Omit),
        fld(6, "resourceVersion", Str, Omit),
        fld(7, "generation", I64, Omit),
        fld(8, "creationTimestamp", Time, Omit),
        fld(9, "deletionTimestamp", Time, Ptr),
        fld(10, "deletionGracePeriodSeconds", I64, Ptr),
        fld(11, "labels", MapStr, Rep),
        fld(12, "annotations", MapStr, Rep),
        fld(13, "ownerReferences", Msg(&OWNER_REFERENCE), Rep),
        fld(14, "finalizers", Str, Rep),
        fld(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY), Rep),
    ],
};
static NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[fld(1, "finalizers", Str, Rep)],
};
static NAMESPACE_CONDITION: Message = Message {
    name: "NamespaceCondition",
    fields: &[
        fld(1, "type", Str, Req),
        fld(2, "status", Str, Req),
        fld(4, "lastTransitionTime", Time, Omit),
        fld(5, "reason", Str, Omit),
        fld(6, "message", Str, Omit),
    ],
};
static NAMESPACE_STATUS: Message = Message {
    name: "NamespaceStatus",
    fields: &[
        fld(1, "phase", Str, Omit),
        fld(2, "conditions", Msg(&NAMESPACE_CONDITION), Rep),
    ],
};
static NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&NAMESPACE_SPEC), Omit),
        fld(3, "status", Msg(&NAMESPACE_STATUS), Omit),
    ],
};
static CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(4, "immutable", Bool, Ptr),
        fld(2, "data", MapStr, Rep),
        fld(3, "binaryData", MapBytes, Rep),
    ],
};
static SECRET: Message = Message {
    name: "Secret",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(5, "immutable", Bool, Ptr),
        fld(2, "data", MapBytes, Rep),
        fld(4, "stringData", MapStr, Rep),
        fld(3, "type", Str, Omit),
    ],
};
static OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        fld(1, "kind", Str, Omit),
        fld(2, "namespace", Str, Omit),
        fld(3, "name", Str, Omit),
        fld(4, "uid", Str, Omit),
        fld(5, "apiVersion", Str, Omit),
        fld(6, "resourceVersion", Str, Omit),
        fld(7, "fieldPath", Str, Omit),
    ],
};
static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[fld(1, "name", Str, Omit)],
};
static SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "secrets", Msg(&OBJECT_REFERENCE), Rep),
        fld(3, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE), Rep),
        fld(4, "automountServiceAccountToken", Bool, Ptr),
    ],
};
static SERVICE_PORT: Message = Message {
    name: "ServicePort",
    fields: &[
        fld(1, "name", Str, Omit),
        fld(2, "protocol", Str, Omit),
        fld(6, "appProtocol", Str, Ptr),
        fld(3, "port", I32, Req),
        fld(4, "targetPort", IntOrString, Omit),
        fld(5, "nodePort", I32, Omit),
    ],
};
static CLIENT_IP_CONFIG: Message = Message {
    name: "ClientIPConfig",
    fields: &[fld(1, "timeoutSeconds", I32, Ptr)],
};
static SESSION_AFFINITY_CONFIG: Message = Message {
    name: "SessionAffinityConfig",
    fields: &[fld(1, "clientIP", Msg(&CLIENT_IP_CONFIG), Ptr)],
};
static SERVICE_SPEC: Message = Message {
    name: "ServiceSpec",
    fields: &[
        fld(1, "ports", Msg(&SERVICE_PORT), Rep),
        fld(2, "selector", MapStr, Rep),
        fld(3, "clusterIP", Str, Omit),
        fld(18, "clusterIPs", Str, Rep),
        fld(4, "type", Str, Omit),
        fld(5, "externalIPs", Str, Rep),
        fld(7, "sessionAffinity", Str, Omit),
        fld(8, "loadBalancerIP", Str, Omit),
        fld(9, "loadBalancerSourceRanges", Str, Rep),
        fld(10, "externalName", Str, Omit),
        fld(11, "externalTrafficPolicy", Str, Omit),
        fld(12, "healthCheckNodePort", I32, Omit),
        fld(13, "publishNotReadyAddresses", Bool, Omit),
        fld(
            14,
            "sessionAffinityConfig",
            Msg(&SESSION_AFFINITY_CONFIG),
            Ptr,
        ),
        fld(19, "ipFamilies", Str, Rep),
        fld(17, "ipFamilyPolicy", Str, Ptr),
        fld(20, "allocateLoadBalancerNodePorts", Bool, Ptr),
        fld(21, "loadBalancerClass", Str, Ptr),
        fld(22, "internalTrafficPolicy", Str, Ptr),
        fld(23, "trafficDistribution", Str, Ptr),
    ],
};
static PORT_STATUS: Message = Message {
    name: "PortStatus",
    fields: &[
        fld(1, "port", I32, Req),
        fld(2, "protocol", Str, Req),
        fld(3, "error", Str, Ptr),
    ],
};
static LOAD_BALANCER_INGRESS: Message = Message {
    name: "LoadBalancerIngress",
    fields: &[
        fld(1, "ip", Str, Omit),
        fld(2, "hostname", Str, Omit),
        fld(3, "ipMode", Str, Ptr),
        fld(4, "ports", Msg(&PORT_STATUS), Rep),
    ],
};
static LOAD_BALANCER_STATUS: Message = Message {
    name: "LoadBalancerStatus",
    fields: &[fld(1, "ingress", Msg(&LOAD_BALANCER_INGRESS), Rep)],
};
static CONDITION: Message = Message {
    name: "Condition",
    fields: &[
        fld(1, "type", Str, Req),
        fld(2, "status", Str, Req),
        fld(3, "observedGeneration", I64, Omit),
        fld(4, "lastTransitionTime", Time, Req),
        fld(5, "reason", Str, Req),
        fld(6, "message", Str, Req),
    ],
};
static SERVICE_STATUS: Message = Message {
    name: "ServiceStatus",
    fields: &[
        fld(1, "loadBalancer", Msg(&LOAD_BALANCER_STATUS), Omit),
        fld(2, "conditions", Msg(&CONDITION), Rep),
    ],
};
static SERVICE: Message = Message {
    name: "Service",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&SERVICE_SPEC), Omit),
        fld(3, "status", Msg(&SERVICE_STATUS), Omit),
    ],
};
static SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message {
    name: "ScopedResourceSelectorRequirement",
    fields: &[
        fld(1, "scopeName", Str, Req),
        fld(2, "operator", Str, Req),
        fld(3, "values", Str, Rep),
    ],
};
static SCOPE_SELECTOR: Message = Message {
    name: "ScopeSelector",
    fields: &[fld(
        1,
        "matchExpressions",
        Msg(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT),
        Rep,
    )],
};
static RESOURCE_QUOTA_SPEC: Message = Message {
    name: "ResourceQuotaSpec",
    fields: &[
        fld(1, "hard", MapQuantity, Rep),
        fld(2, "scopes", Str, Rep),
        fld(3, "scopeSelector", Msg(&SCOPE_SELECTOR), Ptr),
    ],
};
static RESOURCE_QUOTA_STATUS: Message = Message {
    name: "ResourceQuotaStatus",
    fields: &[
        fld(1, "hard", MapQuantity, Rep),
        fld(2, "used", MapQuantity, Rep),
    ],
};
static RESOURCE_QUOTA: Message = Message {
    name: "ResourceQuota",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&RESOURCE_QUOTA_SPEC), Omit),
        fld(3, "status", Msg(&RESOURCE_QUOTA_STATUS), Omit),
    ],
};
static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[
        fld(1, "key", Str, Req),
        fld(2, "operator", Str, Req),
        fld(3, "values", Str, Rep),
    ],
};
static LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[
        fld(1, "matchLabels", MapStr, Rep),
        fld(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT), Rep),
    ],
};
static HOST_PATH_VOLUME_SOURCE: Message = Message {
    name: "HostPathVolumeSource",
    fields: &[fld(1, "path", Str, Req), fld(2, "type", Str, Ptr)],
};
static EMPTY_DIR_VOLUME_SOURCE: Message = Message {
    name: "EmptyDirVolumeSource",
    fields: &[
        fld(1, "medium", Str, Omit),
        fld(2, "sizeLimit", Quantity, Ptr),
        fld(3, "mode", I32, Ptr),
    ],
};
static KEY_TO_PATH: Message = Message {
    name: "KeyToPath",
    fields: &[
        fld(1, "key", Str, Req),
        fld(2, "path", Str, Req),
        fld(3, "mode", I32, Ptr),
        fld(4, "user", I64, Ptr),
    ],
};
static SECRET_VOLUME_SOURCE: Message = Message {
    name: "SecretVolumeSource",
    fields: &[
        fld(1, "secretName", Str, Omit),
        fld(2, "items", Msg(&KEY_TO_PATH), Rep),
        fld(3, "defaultMode", I32, Ptr),
        fld(4, "optional", Bool, Ptr),
        fld(5, "defaultUser", I64, Ptr),
    ],
};
static NFS_VOLUME_SOURCE: Message = Message {
    name: "NFSVolumeSource",
    fields: &[
        fld(1, "server", Str, Req),
        fld(2, "path", Str, Req),
        fld(3, "readOnly", Bool, Omit),
    ],
};
static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message = Message {
    name: "PersistentVolumeClaimVolumeSource",
    fields: &[
        fld(1, "claimName", Str, Req),
        fld(2, "readOnly", Bool, Omit),
    ],
};
static OBJECT_FIELD_SELECTOR: Message = Message {
    name: "ObjectFieldSelector",
    fields: &[
        fld(1, "apiVersion", Str, Omit),
        fld(2, "fieldPath", Str, Req),
    ],
};
static RESOURCE_FIELD_SELECTOR: Message = Message {
    name: "ResourceFieldSelector",
    fields: &[
        fld(1, "containerName", Str, Omit),
        fld(2, "resource", Str, Req),
        fld(3, "divisor", Quantity, Omit),
    ],
};
static DOWNWARD_API_VOLUME_FILE: Message = Message {
    name: "DownwardAPIVolumeFile",
    fields: &[
        fld(1, "path", Str, Req),
        fld(2, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR), Ptr),
        fld(3, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR), Ptr),
        fld(4, "mode", I32, Ptr),
        fld(5, "user", I64, Ptr),
    ],
};
static DOWNWARD_API_VOLUME_SOURCE: Message = Message {
    name: "DownwardAPIVolumeSource",
    fields: &[
        fld(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE), Rep),
        fld(2, "defaultMode", I32, Ptr),
        fld(3, "defaultUser", I64, Ptr),
    ],
};
static CONFIG_MAP_VOLUME_SOURCE: Message = Message {
    name: "ConfigMapVolumeSource",
    fields: &[
        fld(1, "", Inline(&LOCAL_OBJECT_REFERENCE), Req),
        fld(2, "items", Msg(&KEY_TO_PATH), Rep),
        fld(3, "defaultMode", I32, Ptr),
        fld(4, "optional", Bool, Ptr),
        fld(5, "defaultUser", I64, Ptr),
    ],
};
static SECRET_PROJECTION: Message = Message {
    name: "SecretProjection",
    fields: &[
        fld(1, "", Inline(&LOCAL_OBJECT_REFERENCE), Req),
        fld(2, "items", Msg(&KEY_TO_PATH), Rep),
        fld(4, "optional", Bool, Ptr),
    ],
};
static DOWNWARD_API_PROJECTION: Message = Message {
    name: "DownwardAPIProjection",
    fields: &[fld(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE), Rep)],
};
static CONFIG_MAP_PROJECTION: Message = Message {
    name: "ConfigMapProjection",
    fields: &[
        fld(1, "", Inline(&LOCAL_OBJECT_REFERENCE), Req),
        fld(2, "items", Msg(&KEY_TO_PATH), Rep),
        fld(4, "optional", Bool, Ptr),
    ],
};
static SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = Message {
    name: "ServiceAccountTokenProjection",
    fields: &[
        fld(1, "audience", Str, Omit),
        fld(2, "expirationSeconds", I64, Ptr),
        fld(3, "path", Str, Req),
        fld(4, "user", I64, Ptr),
    ],
};
static CLUSTER_TRUST_BUNDLE_PROJECTION: Message = Message {
    name: "ClusterTrustBundleProjection",
    fields: &[
        fld(1, "name", Str, Ptr),
        fld(2, "signerName", Str, Ptr),
        fld(3, "labelSelector", Msg(&LABEL_SELECTOR), Ptr),
        fld(5, "optional", Bool, Ptr),
        fld(4, "path", Str, Req),
        fld(6, "user", I64, Ptr),
    ],
};
static VOLUME_PROJECTION: Message = Message {
    name: "VolumeProjection",
    fields: &[
        fld(1, "secret", Msg(&SECRET_PROJECTION), Ptr),
        fld(2, "downwardAPI", Msg(&DOWNWARD_API_PROJECTION), Ptr),
        fld(3, "configMap", Msg(&CONFIG_MAP_PROJECTION), Ptr),
        fld(
            4,
            "serviceAccountToken",
            Msg(&SERVICE_ACCOUNT_TOKEN_PROJECTION),
            Ptr,
        ),
        fld(
            5,
            "clusterTrustBundle",
            Msg(&CLUSTER_TRUST_BUNDLE_PROJECTION),
            Ptr,
        ),
    ],
};
static PROJECTED_VOLUME_SOURCE: Message = Message {
    name: "ProjectedVolumeSource",
    fields: &[
        fld(1, "sources", Msg(&VOLUME_PROJECTION), RepNull),
        fld(2, "defaultMode", I32, Ptr),
        fld(3, "defaultUser", I64, Ptr),
    ],
};
static CSI_VOLUME_SOURCE: Message = Message {
    name: "CSIVolumeSource",
    fields: &[
        fld(1, "driver", Str, Req),
        fld(2, "readOnly", Bool, Ptr),
        fld(3, "fsType", Str, Ptr),
        fld(4, "volumeAttributes", MapStr, Rep),
        fld(5, "nodePublishSecretRef", Msg(&LOCAL_OBJECT_REFERENCE), Ptr),
    ],
};
static VOLUME_RESOURCE_REQUIREMENTS: Message = Message {
    name: "VolumeResourceRequirements",
    fields: &[
        fld(1, "limits", MapQuantity, Rep),
        fld(2, "requests", MapQuantity, Rep),
    ],
};
static TYPED_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "TypedLocalObjectReference",
    fields: &[
        fld(1, "apiGroup", Str, Ptr),
        fld(2, "kind", Str, Req),
        fld(3, "name", Str, Req),
    ],
};
static TYPED_OBJECT_REFERENCE: Message = Message {
    name: "TypedObjectReference",
    fields: &[
        fld(1, "apiGroup", Str, Ptr),
        fld(2, "kind", Str, Req),
        fld(3, "name", Str, Req),
        fld(4, "namespace", Str, Ptr),
    ],
};
static PERSISTENT_VOLUME_CLAIM_SPEC: Message = Message {
    name: "PersistentVolumeClaimSpec",
    fields: &[
        fld(1, "accessModes", Str, Rep),
        fld(4, "selector", Msg(&LABEL_SELECTOR), Ptr),
        fld(2, "resources", Msg(&VOLUME_RESOURCE_REQUIREMENTS), Omit),
        fld(3, "volumeName", Str, Omit),
        fld(5, "storageClassName", Str, Ptr),
        fld(6, "volumeMode", Str, Ptr),
        fld(7, "dataSource", Msg(&TYPED_LOCAL_OBJECT_REFERENCE), Ptr),
        fld(8, "dataSourceRef", Msg(&TYPED_OBJECT_REFERENCE), Ptr),
        fld(9, "volumeAttributesClassName", Str, Ptr),
    ],
};
static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = Message {
    name: "PersistentVolumeClaimTemplate",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC), Req),
    ],
};
static EPHEMERAL_VOLUME_SOURCE: Message = Message {
    name: "EphemeralVolumeSource",
    fields: &[fld(
        1,
        "volumeClaimTemplate",
        Msg(&PERSISTENT_VOLUME_CLAIM_TEMPLATE),
        Ptr,
    )],
};
static IMAGE_VOLUME_SOURCE: Message = Message {
    name: "ImageVolumeSource",
    fields: &[
        fld(1, "reference", Str, Omit),
        fld(2, "pullPolicy", Str, Omit),
    ],
};
static VOLUME_SOURCE: Message = Message {
    name: "VolumeSource",
    fields: &[
        fld(1, "hostPath", Msg(&HOST_PATH_VOLUME_SOURCE), Ptr),
        fld(2, "emptyDir", Msg(&EMPTY_DIR_VOLUME_SOURCE), Ptr),
        fld(6, "secret", Msg(&SECRET_VOLUME_SOURCE), Ptr),
        fld(7, "nfs", Msg(&NFS_VOLUME_SOURCE), Ptr),
        fld(
            10,
            "persistentVolumeClaim",
            Msg(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE),
            Ptr,
        ),
        fld(16, "downwardAPI", Msg(&DOWNWARD_API_VOLUME_SOURCE), Ptr),
        fld(19, "configMap", Msg(&CONFIG_MAP_VOLUME_SOURCE), Ptr),
        fld(26, "projected", Msg(&PROJECTED_VOLUME_SOURCE), Ptr),
        fld(28, "csi", Msg(&CSI_VOLUME_SOURCE), Ptr),
        fld(29, "ephemeral", Msg(&EPHEMERAL_VOLUME_SOURCE), Ptr),
        fld(30, "image", Msg(&IMAGE_VOLUME_SOURCE), Ptr),
    ],
};
static VOLUME: Message = Message {
    name: "Volume",
    fields: &[
        fld(1, "name", Str, Req),
        fld(2, "", Inline(&VOLUME_SOURCE), Req),
    ],
};
static CONTAINER_PORT: Message = Message {
    name: "ContainerPort",
    fields: &[
        fld(1, "name", Str, Omit),
        fld(2, "hostPort", I32, Omit),
        fld(3, "containerPort", I32, Req),
        fld(4, "protocol", Str, Omit),
        fld(5, "hostIP", Str, Omit),
    ],
};
static CONFIG_MAP_ENV_SOURCE: Message = Message {
    name: "ConfigMapEnvSource",
    fields: &[
        fld(1, "", Inline(&LOCAL_OBJECT_REFERENCE), Req),
        fld(2, "optional", Bool, Ptr),
    ],
};
static SECRET_ENV_SOURCE: Message = Message {
    name: "SecretEnvSource",
    fields: &[
        fld(1, "", Inline(&LOCAL_OBJECT_REFERENCE), Req),
        fld(2, "optional", Bool, Ptr),
    ],
};
static ENV_FROM_SOURCE: Message = Message {
    name: "EnvFromSource",
    fields: &[
        fld(1, "prefix", Str, Omit),
        fld(2, "configMapRef", Msg(&CONFIG_MAP_ENV_SOURCE), Ptr),
        fld(3, "secretRef", Msg(&SECRET_ENV_SOURCE), Ptr),
    ],
};
static CONFIG_MAP_KEY_SELECTOR: Message = Message {
    name: "ConfigMapKeySelector",
    fields: &[
        fld(1, "", Inline(&LOCAL_OBJECT_REFERENCE), Req),
        fld(2, "key", Str, Req),
        fld(3, "optional", Bool, Ptr),
    ],
};
static SECRET_KEY_SELECTOR: Message = Message {
    name: "SecretKeySelector",
    fields: &[
        fld(1, "", Inline(&LOCAL_OBJECT_REFERENCE), Req),
        fld(2, "key", Str, Req),
        fld(3, "optional", Bool, Ptr),
    ],
};
static FILE_KEY_SELECTOR: Message = Message {
    name: "FileKeySelector",
    fields: &[
        fld(1, "volumeName", Str, Req),
        fld(2, "path", Str, Req),
        fld(3, "key", Str, Req),
        fld(4, "optional", Bool, Ptr),
    ],
};
static ENV_VAR_SOURCE: Message = Message {
    name: "EnvVarSource",
    fields: &[
        fld(1, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR), Ptr),
        fld(2, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR), Ptr),
        fld(3, "configMapKeyRef", Msg(&CONFIG_MAP_KEY_SELECTOR), Ptr),
        fld(4, "secretKeyRef", Msg(&SECRET_KEY_SELECTOR), Ptr),
        fld(5, "fileKeyRef", Msg(&FILE_KEY_SELECTOR), Ptr),
    ],
};
static ENV_VAR: Message = Message {
    name: "EnvVar",
    fields: &[
        fld(1, "name", Str, Req),
        fld(2, "value", Str, Omit),
        fld(3, "valueFrom", Msg(&ENV_VAR_SOURCE), Ptr),
    ],
};
static RESOURCE_CLAIM: Message = Message {
    name: "ResourceClaim",
    fields: &[fld(1, "name", Str, Req), fld(2, "request", Str, Omit)],
};
static RESOURCE_REQUIREMENTS: Message = Message {
    name: "ResourceRequirements",
    fields: &[
        fld(1, "limits", MapQuantity, Rep),
        fld(2, "requests", MapQuantity, Rep),
        fld(3, "claims", Msg(&RESOURCE_CLAIM), Rep),
    ],
};
static CONTAINER_RESIZE_POLICY: Message = Message {
    name: "ContainerResizePolicy",
    fields: &[
        fld(1, "resourceName", Str, Req),
        fld(2, "restartPolicy", Str, Req),
    ],
};
static CONTAINER_RESTART_RULE_ON_EXIT_CODES: Message = Message {
    name: "ContainerRestartRuleOnExitCodes",
    fields: &[fld(1, "operator", Str, Omit), fld(2, "values", I32, Rep)],
};
static CONTAINER_RESTART_RULE: Message = Message {
    name: "ContainerRestartRule",
    fields: &[
        fld(1, "action", Str, Omit),
        fld(
            2,
            "exitCodes",
            Msg(&CONTAINER_RESTART_RULE_ON_EXIT_CODES),
            Ptr,
        ),
    ],
};
static VOLUME_MOUNT: Message = Message {
    name: "VolumeMount",
    fields: &[
        fld(1, "name", Str, Req),
        fld(2, "readOnly", Bool, Omit),
        fld(7, "recursiveReadOnly", Str, Ptr),
        fld(3, "mountPath", Str, Req),
        fld(4, "subPath", Str, Omit),
        fld(5, "mountPropagation", Str, Ptr),
        fld(6, "subPathExpr", Str, Omit),
        fld(8, "bindMountOptions", Str, Rep),
    ],
};
static VOLUME_DEVICE: Message = Message {
    name: "VolumeDevice",
    fields: &[fld(1, "name", Str, Req), fld(2, "devicePath", Str, Req)],
};
static EXEC_ACTION: Message = Message {
    name: "ExecAction",
    fields: &[fld(1, "command", Str, Rep)],
};
static HTTP_HEADER: Message = Message {
    name: "HTTPHeader",
    fields: &[fld(1, "name", Str, Req), fld(2, "value", Str, Req)],
};
static HTTP_GET_ACTION: Message = Message {
    name: "HTTPGetAction",
    fields: &[
        fld(1, "path", Str, Omit),
        fld(2, "port", IntOrString, Req),
        fld(3, "host", Str, Omit),
        fld(4, "scheme", Str, Omit),
        fld(5, "httpHeaders", Msg(&HTTP_HEADER), Rep),
        fld(6, "protocol", Str, Ptr),
    ],
};
static TCP_SOCKET_ACTION: Message = Message {
    name: "TCPSocketAction",
    fields: &[fld(1, "port", IntOrString, Req), fld(2, "host", Str, Omit)],
};
static GRPC_ACTION: Message = Message {
    name: "GRPCAction",
    fields: &[
        fld(1, "port", I32, Req),
        fld(2, "service", Str, Ptr),
        fld(3, "mode", Str, Ptr),
    ],
};
static PROBE_HANDLER: Message = Message {
    name: "ProbeHandler",
    fields: &[
        fld(1, "exec", Msg(&EXEC_ACTION), Ptr),
        fld(2, "httpGet", Msg(&HTTP_GET_ACTION), Ptr),
        fld(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION), Ptr),
        fld(4, "grpc", Msg(&GRPC_ACTION), Ptr),
    ],
};
static PROBE: Message = Message {
    name: "Probe",
    fields: &[
        fld(1, "", Inline(&PROBE_HANDLER), Req),
        fld(2, "initialDelaySeconds", I32, Omit),
        fld(3, "timeoutSeconds", I32, Omit),
        fld(4, "periodSeconds", I32, Omit),
        fld(5, "successThreshold", I32, Omit),
        fld(6, "failureThreshold", I32, Omit),
        fld(7, "terminationGracePeriodSeconds", I64, Ptr),
    ],
};
static SLEEP_ACTION: Message = Message {
    name: "SleepAction",
    fields: &[fld(1, "seconds", I64, Req)],
};
static LIFECYCLE_HANDLER: Message = Message {
    name: "LifecycleHandler",
    fields: &[
        fld(1, "exec", Msg(&EXEC_ACTION), Ptr),
        fld(2, "httpGet", Msg(&HTTP_GET_ACTION), Ptr),
        fld(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION), Ptr),
        fld(4, "sleep", Msg(&SLEEP_ACTION), Ptr),
    ],
};
static LIFECYCLE: Message = Message {
    name: "Lifecycle",
    fields: &[
        fld(1, "postStart", Msg(&LIFECYCLE_HANDLER), Ptr),
        fld(2, "preStop", Msg(&LIFECYCLE_HANDLER), Ptr),
        fld(3, "stopSignal", Str, Ptr),
    ],
};
static CAPABILITIES: Message = Message {
    name: "Capabilities",
    fields: &[fld(1, "add", Str, Rep), fld(2, "drop", Str, Rep)],
};
static SE_LINUX_OPTIONS: Message = Message {
    name: "SELinuxOptions",
    fields: &[
        fld(1, "user", Str, Omit),
        fld(2, "role", Str, Omit),
        fld(3, "type", Str, Omit),
        fld(4, "level", Str, Omit),
    ],
};
static WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = Message {
    name: "WindowsSecurityContextOptions",
    fields: &[
        fld(1, "gmsaCredentialSpecName", Str, Ptr),
        fld(2, "gmsaCredentialSpec", Str, Ptr),
        fld(3, "runAsUserName", Str, Ptr),
        fld(4, "hostProcess", Bool, Ptr),
    ],
};
static SECCOMP_PROFILE: Message = Message {
    name: "SeccompProfile",
    fields: &[
        fld(1, "type", Str, Req),
        fld(2, "localhostProfile", Str, Ptr),
    ],
};
static APP_ARMOR_PROFILE: Message = Message {
    name: "AppArmorProfile",
    fields: &[
        fld(1, "type", Str, Req),
        fld(2, "localhostProfile", Str, Ptr),
    ],
};
static SECURITY_CONTEXT: Message = Message {
    name: "SecurityContext",
    fields: &[
        fld(1, "capabilities", Msg(&CAPABILITIES), Ptr),
        fld(2, "privileged", Bool, Ptr),
        fld(3, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS), Ptr),
        fld(
            10,
            "windowsOptions",
            Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS),
            Ptr,
        ),
        fld(4, "runAsUser", I64, Ptr),
        fld(8, "runAsGroup", I64, Ptr),
        fld(5, "runAsNonRoot", Bool, Ptr),
        fld(6, "readOnlyRootFilesystem", Bool, Ptr),
        fld(7, "allowPrivilegeEscalation", Bool, Ptr),
        fld(9, "procMount", Str, Ptr),
        fld(11, "seccompProfile", Msg(&SECCOMP_PROFILE), Ptr),
        fld(12, "appArmorProfile", Msg(&APP_ARMOR_PROFILE), Ptr),
    ],
};
static CONTAINER: Message = Message {
    name: "Container",
    fields: &[
        fld(1, "name", Str, Req),
        fld(2, "image", Str, Omit),
        fld(3, "command", Str, Rep),
        fld(4, "args", Str, Rep),
        fld(5, "workingDir", Str, Omit),
        fld(6, "ports", Msg(&CONTAINER_PORT), Rep),
        fld(19, "envFrom", Msg(&ENV_FROM_SOURCE), Rep),
        fld(7, "env", Msg(&ENV_VAR), Rep),
        fld(8, "resources", Msg(&RESOURCE_REQUIREMENTS), Omit),
        fld(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY), Rep),
        fld(24, "restartPolicy", Str, Ptr),
        fld(25, "restartPolicyRules", Msg(&CONTAINER_RESTART_RULE), Rep),
        fld(9, "volumeMounts", Msg(&VOLUME_MOUNT), Rep),
        fld(21, "volumeDevices", Msg(&VOLUME_DEVICE), Rep),
        fld(10, "livenessProbe", Msg(&PROBE), Ptr),
        fld(11, "readinessProbe", Msg(&PROBE), Ptr),
        fld(22, "startupProbe", Msg(&PROBE), Ptr),
        fld(12, "lifecycle", Msg(&LIFECYCLE), Ptr),
        fld(13, "terminationMessagePath", Str, Omit),
        fld(20, "terminationMessagePolicy", Str, Omit),
        fld(14, "imagePullPolicy", Str, Omit),
        fld(15, "securityContext", Msg(&SECURITY_CONTEXT), Ptr),
        fld(16, "stdin", Bool, Omit),
        fld(17, "stdinOnce", Bool, Omit),
        fld(18, "tty", Bool, Omit),
    ],
};
static SYSCTL: Message = Message {
    name: "Sysctl",
    fields: &[fld(1, "name", Str, Req), fld(2, "value", Str, Req)],
};
static POD_SECURITY_CONTEXT: Message = Message {
    name: "PodSecurityContext",
    fields: &[
        fld(1, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS), Ptr),
        fld(
            8,
            "windowsOptions",
            Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS),
            Ptr,
        ),
        fld(2, "runAsUser", I64, Ptr),
        fld(6, "runAsGroup", I64, Ptr),
        fld(3, "runAsNonRoot", Bool, Ptr),
        fld(4, "supplementalGroups", I64, Rep),
        fld(12, "supplementalGroupsPolicy", Str, Ptr),
        fld(5, "fsGroup", I64, Ptr),
        fld(7, "sysctls", Msg(&SYSCTL), Rep),
        fld(9, "fsGroupChangePolicy", Str, Ptr),
        fld(10, "seccompProfile", Msg(&SECCOMP_PROFILE), Ptr),
        fld(11, "appArmorProfile", Msg(&APP_ARMOR_PROFILE), Ptr),
        fld(13, "seLinuxChangePolicy", Str, Ptr),
    ],
};
static NODE_SELECTOR_REQUIREMENT: Message = Message {
    name: "NodeSelectorRequirement",
    fields: &[
        fld(1, "key", Str, Req),
        fld(2, "operator", Str, Req),
        fld(3, "values", Str, Rep),
    ],
};
static NODE_SELECTOR_TERM: Message = Message {
    name: "NodeSelectorTerm",
    fields: &[
        fld(1, "matchExpressions", Msg(&NODE_SELECTOR_REQUIREMENT), Rep),
        fld(2, "matchFields", Msg(&NODE_SELECTOR_REQUIREMENT), Rep),
    ],
};
static NODE_SELECTOR: Message = Message {
    name: "NodeSelector",
    fields: &[fld(
        1,
        "nodeSelectorTerms",
        Msg(&NODE_SELECTOR_TERM),
        RepNull,
    )],
};
static PREFERRED_SCHEDULING_TERM: Message = Message {
    name: "PreferredSchedulingTerm",
    fields: &[
        fld(1, "weight", I32, Req),
        fld(2, "preference", Msg(&NODE_SELECTOR_TERM), Req),
    ],
};
static NODE_AFFINITY: Message = Message {
    name: "NodeAffinity",
    fields: &[
        fld(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Msg(&NODE_SELECTOR),
            Ptr,
        ),
        fld(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Msg(&PREFERRED_SCHEDULING_TERM),
            Rep,
        ),
    ],
};
static POD_AFFINITY_TERM: Message = Message {
    name: "PodAffinityTerm",
    fields: &[
        fld(1, "labelSelector", Msg(&LABEL_SELECTOR), Ptr),
        fld(2, "namespaces", Str, Rep),
        fld(3, "topologyKey", Str, Req),
        fld(4, "namespaceSelector", Msg(&LABEL_SELECTOR), Ptr),
        fld(5, "matchLabelKeys", Str, Rep),
        fld(6, "mismatchLabelKeys", Str, Rep),
    ],
};
static WEIGHTED_POD_AFFINITY_TERM: Message = Message {
    name: "WeightedPodAffinityTerm",
    fields: &[
        fld(1, "weight", I32, Req),
        fld(2, "podAffinityTerm", Msg(&POD_AFFINITY_TERM), Req),
    ],
};
static POD_AFFINITY: Message = Message {
    name: "PodAffinity",
    fields: &[
        fld(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Msg(&POD_AFFINITY_TERM),
            Rep,
        ),
        fld(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Msg(&WEIGHTED_POD_AFFINITY_TERM),
            Rep,
        ),
    ],
};
static POD_ANTI_AFFINITY: Message = Message {
    name: "PodAntiAffinity",
    fields: &[
        fld(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Msg(&POD_AFFINITY_TERM),
            Rep,
        ),
        fld(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Msg(&WEIGHTED_POD_AFFINITY_TERM),
            Rep,
        ),
    ],
};
static AFFINITY: Message = Message {
    name: "Affinity",
    fields: &[
        fld(1, "nodeAffinity", Msg(&NODE_AFFINITY), Ptr),
        fld(2, "podAffinity", Msg(&POD_AFFINITY), Ptr),
        fld(3, "podAntiAffinity", Msg(&POD_ANTI_AFFINITY), Ptr),
    ],
};
static TOLERATION: Message = Message {
    name: "Toleration",
    fields: &[
        fld(1, "key", Str, Omit),
        fld(2, "operator", Str, Omit),
        fld(3, "value", Str, Omit),
        fld(4, "effect", Str, Omit),
        fld(5, "tolerationSeconds", I64, Ptr),
    ],
};
static HOST_ALIAS: Message = Message {
    name: "HostAlias",
    fields: &[fld(1, "ip", Str, Req), fld(2, "hostnames", Str, Rep)],
};
static POD_DNS_CONFIG_OPTION: Message = Message {
    name: "PodDNSConfigOption",
    fields: &[fld(1, "name", Str, Omit), fld(2, "value", Str, Ptr)],
};
static POD_DNS_CONFIG: Message = Message {
    name: "PodDNSConfig",
    fields: &[
        fld(1, "nameservers", Str, Rep),
        fld(2, "searches", Str, Rep),
        fld(3, "options", Msg(&POD_DNS_CONFIG_OPTION), Rep),
    ],
};
static POD_READINESS_GATE: Message = Message {
    name: "PodReadinessGate",
    fields: &[fld(1, "conditionType", Str, Req)],
};
static TOPOLOGY_SPREAD_CONSTRAINT: Message = Message {
    name: "TopologySpreadConstraint",
    fields: &[
        fld(1, "maxSkew", I32, Req),
        fld(2, "topologyKey", Str, Req),
        fld(3, "whenUnsatisfiable", Str, Req),
        fld(4, "labelSelector", Msg(&LABEL_SELECTOR), Ptr),
        fld(5, "minDomains", I32, Ptr),
        fld(6, "nodeAffinityPolicy", Str, Ptr),
        fld(7, "nodeTaintsPolicy", Str, Ptr),
        fld(8, "matchLabelKeys", Str, Rep),
    ],
};
static POD_OS: Message = Message {
    name: "PodOS",
    fields: &[fld(1, "name", Str, Req)],
};
static POD_SCHEDULING_GATE: Message = Message {
    name: "PodSchedulingGate",
    fields: &[fld(1, "name", Str, Req)],
};
static POD_RESOURCE_CLAIM: Message = Message {
    name: "PodResourceClaim",
    fields: &[
        fld(1, "name", Str, Req),
        fld(3, "resourceClaimName", Str, Ptr),
        fld(4, "resourceClaimTemplateName", Str, Ptr),
    ],
};
static POD_SPEC: Message = Message {
    name: "PodSpec",
    fields: &[
        fld(1, "volumes", Msg(&VOLUME), Rep),
        fld(20, "initContainers", Msg(&CONTAINER), Rep),
        fld(2, "containers", Msg(&CONTAINER), RepNull),
        fld(3, "restartPolicy", Str, Omit),
        fld(4, "terminationGracePeriodSeconds", I64, Ptr),
        fld(5, "activeDeadlineSeconds", I64, Ptr),
        fld(6, "dnsPolicy", Str, Omit),
        fld(7, "nodeSelector", MapStr, Rep),
        fld(8, "serviceAccountName", Str, Omit),
        fld(9, "serviceAccount", Str, Omit),
        fld(21, "automountServiceAccountToken", Bool, Ptr),
        fld(10, "nodeName", Str, Omit),
        fld(11, "hostNetwork", Bool, Omit),
        fld(12, "hostPID", Bool, Omit),
        fld(13, "hostIPC", Bool, Omit),
        fld(27, "shareProcessNamespace", Bool, Ptr),
        fld(14, "securityContext", Msg(&POD_SECURITY_CONTEXT), Ptr),
        fld(15, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE), Rep),
        fld(16, "hostname", Str, Omit),
        fld(17, "subdomain", Str, Omit),
        fld(18, "affinity", Msg(&AFFINITY), Ptr),
        fld(19, "schedulerName", Str, Omit),
        fld(22, "tolerations", Msg(&TOLERATION), Rep),
        fld(23, "hostAliases", Msg(&HOST_ALIAS), Rep),
        fld(24, "priorityClassName", Str, Omit),
        fld(25, "priority", I32, Ptr),
        fld(26, "dnsConfig", Msg(&POD_DNS_CONFIG), Ptr),
        fld(28, "readinessGates", Msg(&POD_READINESS_GATE), Rep),
        fld(29, "runtimeClassName", Str, Ptr),
        fld(30, "enableServiceLinks", Bool, Ptr),
        fld(31, "preemptionPolicy", Str, Ptr),
        fld(32, "overhead", MapQuantity, Rep),
        fld(
            33,
            "topologySpreadConstraints",
            Msg(&TOPOLOGY_SPREAD_CONSTRAINT),
            Rep,
        ),
        fld(35, "setHostnameAsFQDN", Bool, Ptr),
        fld(36, "os", Msg(&POD_OS), Ptr),
        fld(37, "hostUsers", Bool, Ptr),
        fld(38, "schedulingGates", Msg(&POD_SCHEDULING_GATE), Rep),
        fld(39, "resourceClaims", Msg(&POD_RESOURCE_CLAIM), Rep),
        fld(40, "resources", Msg(&RESOURCE_REQUIREMENTS), Ptr),
        fld(41, "hostnameOverride", Str, Ptr),
    ],
};
static POD_TEMPLATE_SPEC: Message = Message {
    name: "PodTemplateSpec",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&POD_SPEC), Omit),
    ],
};
static ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "RollingUpdateDeployment",
    fields: &[
        fld(1, "maxUnavailable", IntOrString, Ptr),
        fld(2, "maxSurge", IntOrString, Ptr),
    ],
};
static DEPLOYMENT_STRATEGY: Message = Message {
    name: "DeploymentStrategy",
    fields: &[
        fld(1, "type", Str, Omit),
        fld(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DEPLOYMENT), Ptr),
    ],
};
static DEPLOYMENT_SPEC: Message = Message {
    name: "DeploymentSpec",
    fields: &[
        fld(1, "replicas", I32, Ptr),
        fld(2, "selector", Msg(&LABEL_SELECTOR), Ptr),
        fld(3, "template", Msg(&POD_TEMPLATE_SPEC), Req),
        fld(4, "strategy", Msg(&DEPLOYMENT_STRATEGY), Omit),
        fld(5, "minReadySeconds", I32, Omit),
        fld(6, "revisionHistoryLimit", I32, Ptr),
        fld(7, "paused", Bool, Omit),
        fld(9, "progressDeadlineSeconds", I32, Ptr),
    ],
};
static DEPLOYMENT_CONDITION: Message = Message {
    name: "DeploymentCondition",
    fields: &[
        fld(1, "type", Str, Req),
        fld(2, "status", Str, Req),
        fld(6, "lastUpdateTime", Time, Omit),
        fld(7, "lastTransitionTime", Time, Omit),
        fld(4, "reason", Str, Omit),
        fld(5, "message", Str, Omit),
    ],
};
static DEPLOYMENT_STATUS: Message = Message {
    name: "DeploymentStatus",
    fields: &[
        fld(1, "observedGeneration", I64, Omit),
        fld(2, "replicas", I32, Omit),
        fld(3, "updatedReplicas", I32, Omit),
        fld(7, "readyReplicas", I32, Omit),
        fld(4, "availableReplicas", I32, Omit),
        fld(5, "unavailableReplicas", I32, Omit),
        fld(9, "terminatingReplicas", I32, Ptr),
        fld(6, "conditions", Msg(&DEPLOYMENT_CONDITION), Rep),
        fld(8, "collisionCount", I32, Ptr),
    ],
};
static DEPLOYMENT: Message = Message {
    name: "Deployment",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&DEPLOYMENT_SPEC), Omit),
        fld(3, "status", Msg(&DEPLOYMENT_STATUS), Omit),
    ],
};
static POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = Message {
    name: "PodFailurePolicyOnExitCodesRequirement",
    fields: &[
        fld(1, "containerName", Str, Ptr),
        fld(2, "operator", Str, Req),
        fld(3, "values", I32, RepNull),
    ],
};
static POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message = Message {
    name: "PodFailurePolicyOnPodConditionsPattern",
    fields: &[fld(1, "type", Str, Req), fld(2, "status", Str, Req)],
};
static POD_FAILURE_POLICY_RULE: Message = Message {
    name: "PodFailurePolicyRule",
    fields: &[
        fld(1, "action", Str, Req),
        fld(
            2,
            "onExitCodes",
            Msg(&POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT),
            Ptr,
        ),
        fld(
            3,
            "onPodConditions",
            Msg(&POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN),
            Rep,
        ),
    ],
};
static POD_FAILURE_POLICY: Message = Message {
    name: "PodFailurePolicy",
    fields: &[fld(1, "rules", Msg(&POD_FAILURE_POLICY_RULE), RepNull)],
};
static SUCCESS_POLICY_RULE: Message = Message {
    name: "SuccessPolicyRule",
    fields: &[
        fld(1, "succeededIndexes", Str, Ptr),
        fld(2, "succeededCount", I32, Ptr),
    ],
};
static SUCCESS_POLICY: Message = Message {
    name: "SuccessPolicy",
    fields: &[fld(1, "rules", Msg(&SUCCESS_POLICY_RULE), RepNull)],
};
static JOB_SPEC: Message = Message {
    name: "JobSpec",
    fields: &[
        fld(1, "parallelism", I32, Ptr),
        fld(2, "completions", I32, Ptr),
        fld(3, "activeDeadlineSeconds", I64, Ptr),
        fld(11, "podFailurePolicy", Msg(&POD_FAILURE_POLICY), Ptr),
        fld(16, "successPolicy", Msg(&SUCCESS_POLICY), Ptr),
        fld(7, "backoffLimit", I32, Ptr),
        fld(12, "backoffLimitPerIndex", I32, Ptr),
        fld(13, "maxFailedIndexes", I32, Ptr),
        fld(4, "selector", Msg(&LABEL_SELECTOR), Ptr),
        fld(5, "manualSelector", Bool, Ptr),
        fld(6, "template", Msg(&POD_TEMPLATE_SPEC), Req),
        fld(8, "ttlSecondsAfterFinished", I32, Ptr),
        fld(9, "completionMode", Str, Ptr),
        fld(10, "suspend", Bool, Ptr),
        fld(14, "podReplacementPolicy", Str, Ptr),
        fld(15, "managedBy", Str, Ptr),
    ],
};
static JOB_CONDITION: Message = Message {
    name: "JobCondition",
    fields: &[
        fld(1, "type", Str, Req),
        fld(2, "status", Str, Req),
        fld(3, "lastProbeTime", Time, Omit),
        fld(4, "lastTransitionTime", Time, Omit),
        fld(5, "reason", Str, Omit),
        fld(6, "message", Str, Omit),
    ],
};
static UNCOUNTED_TERMINATED_PODS: Message = Message {
    name: "UncountedTerminatedPods",
    fields: &[fld(1, "succeeded", Str, Rep), fld(2, "failed", Str, Rep)],
};
static JOB_STATUS: Message = Message {
    name: "JobStatus",
    fields: &[
        fld(1, "conditions", Msg(&JOB_CONDITION), Rep),
        fld(2, "startTime", Time, Ptr),
        fld(3, "completionTime", Time, Ptr),
        fld(4, "active", I32, Omit),
        fld(5, "succeeded", I32, Omit),
        fld(6, "failed", I32, Omit),
        fld(11, "terminating", I32, Ptr),
        fld(7, "completedIndexes", Str, Omit),
        fld(10, "failedIndexes", Str, Ptr),
        fld(
            8,
            "uncountedTerminatedPods",
            Msg(&UNCOUNTED_TERMINATED_PODS),
            Ptr,
        ),
        fld(9, "ready", I32, Ptr),
    ],
};
static JOB: Message = Message {
    name: "Job",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&JOB_SPEC), Omit),
        fld(3, "status", Msg(&JOB_STATUS), Omit),
    ],
};
static JOB_TEMPLATE_SPEC: Message = Message {
    name: "JobTemplateSpec",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&JOB_SPEC), Omit),
    ],
};
static CRON_JOB_SPEC: Message = Message {
    name: "CronJobSpec",
    fields: &[
        fld(1, "schedule", Str, Req),
        fld(8, "timeZone", Str, Ptr),
        fld(2, "startingDeadlineSeconds", I64, Ptr),
        fld(3, "concurrencyPolicy", Str, Omit),
        fld(4, "suspend", Bool, Ptr),
        fld(5, "jobTemplate", Msg(&JOB_TEMPLATE_SPEC), Req),
        fld(6, "successfulJobsHistoryLimit", I32, Ptr),
        fld(7, "failedJobsHistoryLimit", I32, Ptr),
    ],
};
static CRON_JOB_STATUS: Message = Message {
    name: "CronJobStatus",
    fields: &[
        fld(1, "active", Msg(&OBJECT_REFERENCE), Rep),
        fld(4, "lastScheduleTime", Time, Ptr),
        fld(5, "lastSuccessfulTime", Time, Ptr),
    ],
};
static CRON_JOB: Message = Message {
    name: "CronJob",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&CRON_JOB_SPEC), Omit),
        fld(3, "status", Msg(&CRON_JOB_STATUS), Omit),
    ],
};
static POLICY_RULE: Message = Message {
    name: "PolicyRule",
    fields: &[
        fld(1, "verbs", Str, RepNull),
        fld(2, "apiGroups", Str, Rep),
        fld(3, "resources", Str, Rep),
        fld(4, "resourceNames", Str, Rep),
        fld(5, "nonResourceURLs", Str, Rep),
    ],
};
static ROLE: Message = Message {
    name: "Role",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "rules", Msg(&POLICY_RULE), RepNull),
    ],
};
static AGGREGATION_RULE: Message = Message {
    name: "AggregationRule",
    fields: &[fld(1, "clusterRoleSelectors", Msg(&LABEL_SELECTOR), Rep)],
};
static CLUSTER_ROLE: Message = Message {
    name: "ClusterRole",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "rules", Msg(&POLICY_RULE), RepNull),
        fld(3, "aggregationRule", Msg(&AGGREGATION_RULE), Ptr),
    ],
};
static SUBJECT: Message = Message {
    name: "Subject",
    fields: &[
        fld(1, "kind", Str, Req),
        fld(2, "apiGroup", Str, Omit),
        fld(3, "name", Str, Req),
        fld(4, "namespace", Str, Omit),
    ],
};
static ROLE_REF: Message = Message {
    name: "RoleRef",
    fields: &[
        fld(1, "apiGroup", Str, Req),
        fld(2, "kind", Str, Req),
        fld(3, "name", Str, Req),
    ],
};
static ROLE_BINDING: Message = Message {
    name: "RoleBinding",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "subjects", Msg(&SUBJECT), Rep),
        fld(3, "roleRef", Msg(&ROLE_REF), Req),
    ],
};
static CLUSTER_ROLE_BINDING: Message = Message {
    name: "ClusterRoleBinding",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "subjects", Msg(&SUBJECT), Rep),
        fld(3, "roleRef", Msg(&ROLE_REF), Req),
    ],
};
static PRIORITY_CLASS: Message = Message {
    name: "PriorityClass",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "value", I32, Req),
        fld(3, "globalDefault", Bool, Omit),
        fld(4, "description", Str, Omit),
        fld(5, "preemptionPolicy", Str, Ptr),
    ],
};
static POD_DISRUPTION_BUDGET_SPEC: Message = Message {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        fld(1, "minAvailable", IntOrString, Ptr),
        fld(2, "selector", Msg(&LABEL_SELECTOR), Ptr),
        fld(3, "maxUnavailable", IntOrString, Ptr),
        fld(4, "unhealthyPodEvictionPolicy", Str, Ptr),
    ],
};
static POD_DISRUPTION_BUDGET_STATUS: Message = Message {
    name: "PodDisruptionBudgetStatus",
    fields: &[
        fld(1, "observedGeneration", I64, Omit),
        fld(2, "disruptedPods", MapTime, Rep),
        fld(3, "disruptionsAllowed", I32, Req),
        fld(4, "currentHealthy", I32, Req),
        fld(5, "desiredHealthy", I32, Req),
        fld(6, "expectedPods", I32, Req),
        fld(7, "conditions", Msg(&CONDITION), Rep),
    ],
};
static POD_DISRUPTION_BUDGET: Message = Message {
    name: "PodDisruptionBudget",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&POD_DISRUPTION_BUDGET_SPEC), Omit),
        fld(3, "status", Msg(&POD_DISRUPTION_BUDGET_STATUS), Omit),
    ],
};
static SERVICE_BACKEND_PORT: Message = Message {
    name: "ServiceBackendPort",
    fields: &[fld(1, "name", Str, Omit), fld(2, "number", I32, Omit)],
};
static INGRESS_SERVICE_BACKEND: Message = Message {
    name: "IngressServiceBackend",
    fields: &[
        fld(1, "name", Str, Req),
        fld(2, "port", Msg(&SERVICE_BACKEND_PORT), Omit),
    ],
};
static INGRESS_BACKEND: Message = Message {
    name: "IngressBackend",
    fields: &[
        fld(4, "service", Msg(&INGRESS_SERVICE_BACKEND), Ptr),
        fld(3, "resource", Msg(&TYPED_LOCAL_OBJECT_REFERENCE), Ptr),
    ],
};
static INGRESS_TLS: Message = Message {
    name: "IngressTLS",
    fields: &[fld(1, "hosts", Str, Rep), fld(2, "secretName", Str, Omit)],
};
static HTTP_INGRESS_PATH: Message = Message {
    name: "HTTPIngressPath",
    fields: &[
        fld(1, "path", Str, Omit),
        fld(3, "pathType", Str, Ptr),
        fld(2, "backend", Msg(&INGRESS_BACKEND), Req),
    ],
};
static HTTP_INGRESS_RULE_VALUE: Message = Message {
    name: "HTTPIngressRuleValue",
    fields: &[fld(1, "paths", Msg(&HTTP_INGRESS_PATH), RepNull)],
};
static INGRESS_RULE_VALUE: Message = Message {
    name: "IngressRuleValue",
    fields: &[fld(1, "http", Msg(&HTTP_INGRESS_RULE_VALUE), Ptr)],
};
static INGRESS_RULE: Message = Message {
    name: "IngressRule",
    fields: &[
        fld(1, "host", Str, Omit),
        fld(2, "", Inline(&INGRESS_RULE_VALUE), Req),
    ],
};
static INGRESS_SPEC: Message = Message {
    name: "IngressSpec",
    fields: &[
        fld(4, "ingressClassName", Str, Ptr),
        fld(1, "defaultBackend", Msg(&INGRESS_BACKEND), Ptr),
        fld(2, "tls", Msg(&INGRESS_TLS), Rep),
        fld(3, "rules", Msg(&INGRESS_RULE), Rep),
    ],
};
static INGRESS_PORT_STATUS: Message = Message {
    name: "IngressPortStatus",
    fields: &[
        fld(1, "port", I32, Req),
        fld(2, "protocol", Str, Req),
        fld(3, "error", Str, Ptr),
    ],
};
static INGRESS_LOAD_BALANCER_INGRESS: Message = Message {
    name: "IngressLoadBalancerIngress",
    fields: &[
        fld(1, "ip", Str, Omit),
        fld(2, "hostname", Str, Omit),
        fld(4, "ports", Msg(&INGRESS_PORT_STATUS), Rep),
    ],
};
static INGRESS_LOAD_BALANCER_STATUS: Message = Message {
    name: "IngressLoadBalancerStatus",
    fields: &[fld(1, "ingress", Msg(&INGRESS_LOAD_BALANCER_INGRESS), Rep)],
};
static INGRESS_STATUS: Message = Message {
    name: "IngressStatus",
    fields: &[fld(
        1,
        "loadBalancer",
        Msg(&INGRESS_LOAD_BALANCER_STATUS),
        Omit,
    )],
};
static INGRESS: Message = Message {
    name: "Ingress",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&INGRESS_SPEC), Omit),
        fld(3, "status", Msg(&INGRESS_STATUS), Omit),
    ],
};
static BOUND_OBJECT_REFERENCE: Message = Message {
    name: "BoundObjectReference",
    fields: &[
        fld(1, "kind", Str, Omit),
        fld(2, "apiVersion", Str, Omit),
        fld(3, "name", Str, Omit),
        fld(4, "uid", Str, Omit),
    ],
};
static TOKEN_REQUEST_SPEC: Message = Message {
    name: "TokenRequestSpec",
    fields: &[
        fld(1, "audiences", Str, RepNull),
        fld(4, "expirationSeconds", I64, Ptr),
        fld(3, "boundObjectRef", Msg(&BOUND_OBJECT_REFERENCE), Ptr),
        fld(5, "attestations", MapStrList, Rep),
    ],
};
static TOKEN_REQUEST_STATUS: Message = Message {
    name: "TokenRequestStatus",
    fields: &[
        fld(1, "token", Str, Req),
        fld(2, "expirationTimestamp", Time, Req),
    ],
};
static TOKEN_REQUEST: Message = Message {
    name: "TokenRequest",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&TOKEN_REQUEST_SPEC), Req),
        fld(3, "status", Msg(&TOKEN_REQUEST_STATUS), Omit),
    ],
};
static FIELD_SELECTOR_REQUIREMENT: Message = Message {
    name: "FieldSelectorRequirement",
    fields: &[
        fld(1, "key", Str, Req),
        fld(2, "operator", Str, Req),
        fld(3, "values", Str, Rep),
    ],
};
static FIELD_SELECTOR_ATTRIBUTES: Message = Message {
    name: "FieldSelectorAttributes",
    fields: &[
        fld(1, "rawSelector", Str, Omit),
        fld(2, "requirements", Msg(&FIELD_SELECTOR_REQUIREMENT), Rep),
    ],
};
static LABEL_SELECTOR_ATTRIBUTES: Message = Message {
    name: "LabelSelectorAttributes",
    fields: &[
        fld(1, "rawSelector", Str, Omit),
        fld(2, "requirements", Msg(&LABEL_SELECTOR_REQUIREMENT), Rep),
    ],
};
static RESOURCE_ATTRIBUTES: Message = Message {
    name: "ResourceAttributes",
    fields: &[
        fld(1, "namespace", Str, Omit),
        fld(2, "verb", Str, Omit),
        fld(3, "group", Str, Omit),
        fld(4, "version", Str, Omit),
        fld(5, "resource", Str, Omit),
        fld(6, "subresource", Str, Omit),
        fld(7, "name", Str, Omit),
        fld(8, "fieldSelector", Msg(&FIELD_SELECTOR_ATTRIBUTES), Ptr),
        fld(9, "labelSelector", Msg(&LABEL_SELECTOR_ATTRIBUTES), Ptr),
    ],
};
static NON_RESOURCE_ATTRIBUTES: Message = Message {
    name: "NonResourceAttributes",
    fields: &[fld(1, "path", Str, Omit), fld(2, "verb", Str, Omit)],
};
static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        fld(1, "resourceAttributes", Msg(&RESOURCE_ATTRIBUTES), Ptr),
        fld(
            2,
            "nonResourceAttributes",
            Msg(&NON_RESOURCE_ATTRIBUTES),
            Ptr,
        ),
    ],
};
static SUBJECT_ACCESS_REVIEW_STATUS: Message = Message {
    name: "SubjectAccessReviewStatus",
    fields: &[
        fld(1, "allowed", Bool, Req),
        fld(4, "denied", Bool, Omit),
        fld(2, "reason", Str, Omit),
        fld(3, "evaluationError", Str, Omit),
    ],
};
static SELF_SUBJECT_ACCESS_REVIEW: Message = Message {
    name: "SelfSubjectAccessReview",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC), Req),
        fld(3, "status", Msg(&SUBJECT_ACCESS_REVIEW_STATUS), Omit),
    ],
};
static USER_INFO: Message = Message {
    name: "UserInfo",
    fields: &[
        fld(1, "username", Str, Omit),
        fld(2, "uid", Str, Omit),
        fld(3, "groups", Str, Rep),
        fld(4, "extra", MapStrList, Rep),
    ],
};
static SELF_SUBJECT_REVIEW_STATUS: Message = Message {
    name: "SelfSubjectReviewStatus",
    fields: &[fld(1, "userInfo", Msg(&USER_INFO), Omit)],
};
static SELF_SUBJECT_REVIEW: Message = Message {
    name: "SelfSubjectReview",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "status", Msg(&SELF_SUBJECT_REVIEW_STATUS), Omit),
    ],
};
static PRECONDITIONS: Message = Message {
    name: "Preconditions",
    fields: &[fld(1, "uid", Str, Ptr)],
};
static DELETE_OPTIONS: Message = Message {
    name: "DeleteOptions",
    fields: &[
        fld(1, "gracePeriodSeconds", I64, Ptr),
        fld(2, "preconditions", Msg(&PRECONDITIONS), Ptr),
        fld(3, "orphanDependents", Bool, Ptr),
        fld(4, "propagationPolicy", Str, Ptr),
        fld(5, "dryRun", Str, Rep),
        fld(
            6,
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            Bool,
            Ptr,
        ),
    ],
};
static EVICTION: Message = Message {
    name: "Eviction",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "deleteOptions", Msg(&DELETE_OPTIONS), Ptr),
    ],
};
static LEASE_SPEC: Message = Message {
    name: "LeaseSpec",
    fields: &[
        fld(1, "holderIdentity", Str, Ptr),
        fld(2, "leaseDurationSeconds", I32, Ptr),
        fld(3, "acquireTime", MicroTime, Ptr),
        fld(4, "renewTime", MicroTime, Ptr),
        fld(5, "leaseTransitions", I32, Ptr),
        fld(6, "strategy", Str, Ptr),
        fld(7, "preferredHolder", Str, Ptr),
    ],
};
static LEASE: Message = Message {
    name: "Lease",
    fields: &[
        fld(1, "metadata", Msg(&OBJECT_META), Omit),
        fld(2, "spec", Msg(&LEASE_SPEC), Omit),
    ],
};
