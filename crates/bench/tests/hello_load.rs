//! `hello-load` end to end at a small size: the harness runs both sides, both converge, and
//! the engine keeps to 3 writes and 3 hook calls per parent. The calls are upstream's: one
//! for the new parent, then one for its child's event and one for its own status write's
//! event (a single one when both events are seen before the next sync starts).
//!
//! Needs the `metacontroller` binary next to `hello-load` (`cargo test --workspace` builds it,
//! as does `cargo build -p metacontroller`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Runs `hello-load` with `args` (and the `metacontroller` binary next to it); returns the
/// JSON lines it printed, in order. Fails unless it exits successfully.
fn hello_load(args: &[&str]) -> Vec<Value> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hello-load"));
    let metacontroller = exe.with_file_name("metacontroller");
    assert!(
        metacontroller.exists(),
        "{} is missing: run `cargo build -p metacontroller` first",
        metacontroller.display()
    );
    let out = Command::new(&exe)
        .args(args)
        .args(["--time-limit-secs", "120"])
        .arg("--metacontroller-bin")
        .arg(&metacontroller)
        .output()
        .expect("run hello-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hello-load failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn twenty_parents_converge_within_three_writes_and_three_hook_calls_each() {
    let lines = hello_load(&["--parents", "20", "--settle-ms", "1500"]);
    let summary = lines
        .iter()
        .find(|v| v.get("engine").is_some())
        .expect("a JSON summary line");
    let line = summary.to_string();
    for side in ["engine", "floor"] {
        assert_eq!(summary[side]["converged"], 20, "{side}: {line}");
    }
    let engine = &summary["engine"];
    let writes = engine["writes_per_parent"].as_f64().expect("writes");
    let calls = engine["hook_calls_per_parent"]
        .as_f64()
        .expect("hook calls");
    assert!(writes <= 3.0, "writes per parent {writes}: {line}");
    assert!(
        (2.0..=3.0).contains(&calls),
        "hook calls per parent {calls}: {line}"
    );
    assert!(
        engine["cpu_s"]["engine"].as_f64().is_some_and(|s| s > 0.0),
        "engine CPU time measured: {line}"
    );
    assert!(summary["ratio"].as_f64().is_some_and(|r| r > 0.0), "{line}");
}

/// Every hook server of the matrix serves the tutorial's answer: with each, the engine
/// converges with the same writes and calls.
#[test]
fn every_hook_server_of_the_matrix_converges() {
    assert!(PathBuf::from(env!("CARGO_BIN_EXE_hello-hook")).exists());
    let lines = hello_load(&[
        "--parents",
        "10",
        "--mode",
        "engine",
        "--hook",
        "http10,keepalive,keepalive-nodelay,node,compiled",
    ]);
    let summary = lines
        .iter()
        .find(|v| v.get("matrix").is_some())
        .expect("the matrix's JSON line");
    let rows = summary["matrix"].as_array().expect("matrix rows");
    let servers: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["hook_server"].as_str())
        .collect();
    assert_eq!(
        servers,
        [
            "http10",
            "keepalive",
            "keepalive-nodelay",
            "node",
            "compiled"
        ]
    );
    for row in rows {
        assert!(row["convergence_s"].as_f64().is_some(), "converged: {row}");
        let calls = row["hook_calls_per_parent"].as_f64().expect("calls");
        assert!((2.0..=3.0).contains(&calls), "{row}");
        assert_eq!(row["writes_per_parent"].as_f64(), Some(3.0), "{row}");
    }
}
