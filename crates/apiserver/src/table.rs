//! Rendering of `meta.k8s.io/v1` Table responses for `kubectl get`.
