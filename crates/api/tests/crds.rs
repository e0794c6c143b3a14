//! The committed CRD manifest must equal what the types generate.

use std::path::PathBuf;

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds/metacontroller-crds-v1.yaml")
}

#[test]
fn committed_crds_are_current() {
    let generated = metacontroller_api::crds_yaml();
    let path = manifest_path();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "deploy/crds/metacontroller-crds-v1.yaml is out of date with the API types; \
         regenerate it with `UPDATE_CRDS=1 cargo test -p metacontroller-api` and commit the result"
    );
}

#[test]
fn yaml_parses_back_to_the_generated_values() {
    let text = metacontroller_api::crds_yaml();
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML document"))
        .collect();
    assert_eq!(docs, metacontroller_api::crds());
}
