//! Checks of the install manifests under `deploy/` against the real flag parser: every
//! argument the kustomization and the Helm chart pass must be one the binary accepts.
//!
//! Helm is not needed to run these: the chart's templates are checked statically (balanced
//! actions and blocks, every `.Values` path defined in `values.yaml`).

use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;

use crate::cli::{normalize_args, Cli};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parses(args: &[String]) -> Result<Cli, clap::Error> {
    let argv = std::iter::once("metacontroller".to_string()).chain(args.iter().cloned());
    Cli::try_parse_from(normalize_args(argv))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|a| a.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn production_statefulset_args_are_accepted() {
    let doc: Value = serde_yaml::from_str(&read("production/statefulset.yaml")).unwrap();
    let container = &doc["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&container["args"]);
    let cli = parses(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(cli.command.is_none());
    assert!(cli.run.leader.leader_election);
    // The probes and the metrics port point at what the flags bind.
    assert_eq!(
        cli.run.health_probe_bind_address.0.as_deref(),
        Some("0.0.0.0:8081")
    );
    assert_eq!(cli.run.metrics_address.0.as_deref(), Some("0.0.0.0:9999"));
    let ports = container["ports"].as_array().unwrap();
    assert!(ports
        .iter()
        .any(|p| p["name"] == "health" && p["containerPort"] == 8081));
    assert!(ports
        .iter()
        .any(|p| p["name"] == "metrics" && p["containerPort"] == 9999));
    let pod = &doc["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    // Kubernetes must wait longer than the engine's own drain bound.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > cli.run.engine.graceful_shutdown_timeout.as_secs());
}

#[test]
fn helm_default_args_are_accepted() {
    let values: Value = serde_yaml::from_str(&read("helm/metacontroller/values.yaml")).unwrap();
    let args = strings(&values["commandArgs"]);
    parses(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    // The argument the chart adds for several replicas.
    let mut with_election = args.clone();
    with_election.push("--leader-election".into());
    assert!(parses(&with_election).unwrap().run.leader.leader_election);
    assert_eq!(values["command"], "/usr/bin/metacontroller");
    assert_eq!(values["probes"]["port"], 8081);
}

#[test]
fn upstream_manifest_args_are_accepted() {
    // Upstream's production, development and chart defaults, verbatim.
    for args in [
        &["--zap-log-level=4", "--discovery-interval=20s"][..],
        &[
            "--zap-devel",
            "--zap-log-level=5",
            "--discovery-interval=5s",
        ][..],
        &[
            "--zap-log-level=4",
            "--discovery-interval=20s",
            "--cache-flush-interval=30m",
            "--health-probe-bind-address=:8081",
        ][..],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parses(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}

/// Whether `path` (like `image.repository`) is defined in `values`; a path below an empty
/// map or null counts (templates test such optional keys with `if`/`with`).
fn defined(values: &Value, path: &str) -> bool {
    let mut node = values;
    for key in path.split('.') {
        match node {
            Value::Object(map) if map.is_empty() => return true,
            Value::Object(map) => match map.get(key) {
                Some(next) => node = next,
                None => return false,
            },
            Value::Null => return true,
            _ => return false,
        }
    }
    true
}

#[test]
fn helm_templates_are_balanced_and_use_defined_values() {
    let values: Value = serde_yaml::from_str(&read("helm/metacontroller/values.yaml")).unwrap();
    let chart: Value = serde_yaml::from_str(&read("helm/metacontroller/Chart.yaml")).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "metacontroller");
    let dir = deploy().join("helm/metacontroller/templates");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(entries.len() >= 8, "{entries:?}");
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            text.matches("{{").count(),
            text.matches("}}").count(),
            "{name}: unbalanced actions"
        );
        let mut depth = 0i32;
        for action in text.split("{{").skip(1) {
            let action = action.split("}}").next().unwrap_or_default();
            let word = action
                .trim_start_matches('-')
                .split_whitespace()
                .next()
                .unwrap_or_default();
            match word {
                "if" | "with" | "range" | "define" => depth += 1,
                "end" => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "{name}: `end` without a block");
            for (i, _) in action.match_indices(".Values.") {
                let rest = &action[i + ".Values.".len()..];
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                    .collect();
                let path = path.trim_end_matches('.');
                assert!(
                    defined(&values, path),
                    "{name}: .Values.{path} is not in values.yaml"
                );
            }
        }
        assert_eq!(depth, 0, "{name}: unclosed block");
    }
    // The chart ships the generated CRDs.
    let crds = read("helm/metacontroller/crds/metacontroller-crds-v1.yaml");
    assert_eq!(crds, read("crds/metacontroller-crds-v1.yaml"));
}
