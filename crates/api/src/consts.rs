//! Names shared with upstream Metacontroller: the API group, kinds and resources, and the
//! annotation, label and finalizer keys that Metacontroller writes on the objects it manages.
//!
//! These strings are part of the compatibility contract: a cluster migrated from upstream
//! Metacontroller keeps working only if they are byte-for-byte identical.

/// API group of the Metacontroller kinds.
pub const GROUP: &str = "metacontroller.k8s.io";
/// The only served version of the Metacontroller kinds.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Metacontroller object.
pub const API_VERSION: &str = "metacontroller.k8s.io/v1alpha1";

/// Kind of [`crate::CompositeController`].
pub const COMPOSITE_CONTROLLER_KIND: &str = "CompositeController";
/// Plural resource name of [`crate::CompositeController`].
pub const COMPOSITE_CONTROLLER_RESOURCE: &str = "compositecontrollers";
/// Kind of [`crate::DecoratorController`].
pub const DECORATOR_CONTROLLER_KIND: &str = "DecoratorController";
/// Plural resource name of [`crate::DecoratorController`].
pub const DECORATOR_CONTROLLER_RESOURCE: &str = "decoratorcontrollers";
/// Kind of [`crate::ControllerRevision`].
pub const CONTROLLER_REVISION_KIND: &str = "ControllerRevision";
/// Plural resource name of [`crate::ControllerRevision`].
pub const CONTROLLER_REVISION_RESOURCE: &str = "controllerrevisions";

/// Annotation holding the JSON of the last configuration Metacontroller applied to an object;
/// the base of the three-way merge on the next update.
pub const LAST_APPLIED_ANNOTATION: &str = "metacontroller.k8s.io/last-applied-configuration";

/// Annotation a DecoratorController puts on each attachment it creates, holding the
/// DecoratorController's name, so several decorators can attach to one object.
pub const DECORATOR_CONTROLLER_ANNOTATION: &str = "metacontroller.k8s.io/decorator-controller";

/// Label added to parents' children (and ControllerRevisions) when `generateSelector` is on;
/// its value is the parent's UID.
pub const CONTROLLER_UID_LABEL: &str = "controller-uid";

/// Label on a ControllerRevision naming the API group of its parent resource.
pub const REVISION_API_GROUP_LABEL: &str = "metacontroller.k8s.io/apiGroup";
/// Label on a ControllerRevision naming the plural resource of its parent.
pub const REVISION_RESOURCE_LABEL: &str = "metacontroller.k8s.io/resource";

/// Prefix of the finalizer a CompositeController with a finalize hook puts on its parents;
/// the controller's name follows.
pub const COMPOSITE_FINALIZER_PREFIX: &str = "metacontroller.io/compositecontroller-";
/// Prefix of the finalizer a DecoratorController with a finalize hook puts on its targets;
/// the controller's name follows.
pub const DECORATOR_FINALIZER_PREFIX: &str = "metacontroller.io/decoratorcontroller-";

/// Finalizer name a CompositeController called `controller_name` uses.
pub fn composite_finalizer(controller_name: &str) -> String {
    format!("{COMPOSITE_FINALIZER_PREFIX}{controller_name}")
}

/// Finalizer name a DecoratorController called `controller_name` uses.
pub fn decorator_finalizer(controller_name: &str) -> String {
    format!("{DECORATOR_FINALIZER_PREFIX}{controller_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizer_names_append_the_controller_name() {
        assert_eq!(
            composite_finalizer("hello-controller"),
            "metacontroller.io/compositecontroller-hello-controller"
        );
        assert_eq!(
            decorator_finalizer("svc-per-pod"),
            "metacontroller.io/decoratorcontroller-svc-per-pod"
        );
    }

    #[test]
    fn api_version_is_group_slash_version() {
        assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
    }
}
