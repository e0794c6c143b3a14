//! The `process` runtime: a container is a local process.
//!
//! - The image chooses the interpreter: `python:*` (and `python` images of any registry) run
//!   `python`/`python3`/`pythonX.Y` commands with the local `python3`; `busybox`, `alpine`,
//!   `ubuntu` and `debian` images run their commands with the local tools of the same name.
//!   Any other image cannot be run: the container fails at once (see [`map_image`]).
//! - Volumes (`configMap`, `secret`, `emptyDir`, `downwardAPI`, `projected` without tokens,
//!   `persistentVolumeClaim`, `hostPath`) are directories under the pod's directory (claims
//!   under the node's, so they outlive pods); every path below a `mountPath` in the command,
//!   arguments, environment and working directory is rewritten to that directory.
//! - Pods share the host's network: the pod IP is 127.0.0.1 and a process binds its ports
//!   there; two pods binding the same port conflict, and the second one fails as it would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::world::{str_at, Kind, World};

/// What runs a container's image here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `python3` stands for every Python interpreter name.
    Python,
    /// The host's shell and tools.
    Shell,
}

/// The repository name of an image reference without registry, tag or digest:
/// `docker.io/library/python:3.12` → `python`.
pub fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// The runtime for an image, or `None` when none is known.
pub fn map_image(image: &str) -> Option<ImageKind> {
    match image_name(image) {
        "python" | "python3" => Some(ImageKind::Python),
        "busybox" | "alpine" | "ubuntu" | "debian" => Some(ImageKind::Shell),
        _ => None,
    }
}

/// The images [`map_image`] knows, for messages.
pub const KNOWN_IMAGES: &str = "python:*, busybox, alpine, ubuntu, debian";

fn is_python(word: &str) -> bool {
    let base = word.rsplit('/').next().unwrap_or(word);
    base == "python"
        || base
            .strip_prefix("python")
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Expands `$(VAR)` references as the kubelet does (`$$` escapes a `$`; unknown references
/// stay as written).
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) if env.contains_key(&inner[..end]) => {
                    out.push_str(&env[&inner[..end]]);
                    rest = &inner[end + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Rewrites every occurrence of a mount path (as a whole path component prefix) to its local
/// directory; longer mount paths first.
pub fn rewrite_paths(s: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = s.to_string();
    for (mount, local) in mounts {
        let mount = mount.trim_end_matches('/');
        if mount.is_empty() {
            continue;
        }
        let local = local.to_string_lossy();
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(mount) {
            let before_ok = i == 0 || {
                let c = rest.as_bytes()[i - 1];
                matches!(c, b' ' | b'=' | b'"' | b'\'' | b':' | b'(' | b',')
            };
            let end = i + mount.len();
            let after_ok = end == rest.len() || {
                let c = rest.as_bytes()[end];
                matches!(c, b'/' | b' ' | b'"' | b'\'' | b':' | b')' | b',' | b';')
            };
            result.push_str(&rest[..i]);
            if before_ok && after_ok {
                result.push_str(&local);
            } else {
                result.push_str(mount);
            }
            rest = &rest[end..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// A container ready to be spawned.
#[derive(Debug)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

/// Why a container cannot start.
#[derive(Debug)]
pub enum Unstartable {
    /// Permanent: the pod fails (`reason`, `message`).
    Fatal(&'static str, String),
    /// A referenced object is missing; retried (`reason`, `message`).
    Waiting(&'static str, String),
}

fn get_ref(world: &World, kind: Kind, ns: &str, name: &str) -> Option<Value> {
    world.get(kind, &(ns.to_string(), name.to_string()))
}

/// The string values of a ConfigMap (`data`, and `binaryData` decoded) or Secret (`data`
/// decoded, `stringData` as is).
fn object_data(obj: &Value, kind: Kind) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    let decoded = |v: &Value| v.as_str().and_then(|s| b64.decode(s).ok());
    match kind {
        Kind::ConfigMap => {
            if let Some(m) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in m {
                    out.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
                }
            }
            if let Some(m) = obj.get("binaryData").and_then(Value::as_object) {
                for (k, v) in m {
                    out.insert(k.clone(), decoded(v).unwrap_or_default());
                }
            }
        }
        _ => {
            if let Some(m) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in m {
                    out.insert(k.clone(), decoded(v).unwrap_or_default());
                }
            }
            if let Some(m) = obj.get("stringData").and_then(Value::as_object) {
                for (k, v) in m {
                    out.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
                }
            }
        }
    }
    out
}

/// A `fieldRef` value of the downward API.
fn field_ref(pod: &Value, path: &str, pod_ip: &str) -> Option<String> {
    let simple = match path {
        "metadata.name" => Some(str_at(pod, "/metadata/name").to_string()),
        "metadata.namespace" => Some(str_at(pod, "/metadata/namespace").to_string()),
        "metadata.uid" => Some(str_at(pod, "/metadata/uid").to_string()),
        "spec.nodeName" => Some(str_at(pod, "/spec/nodeName").to_string()),
        "spec.serviceAccountName" => Some(str_at(pod, "/spec/serviceAccountName").to_string()),
        "status.podIP" | "status.hostIP" => Some(pod_ip.to_string()),
        "status.podIPs" | "status.hostIPs" => Some(pod_ip.to_string()),
        _ => None,
    };
    if simple.is_some() {
        return simple;
    }
    for (prefix, map) in [
        ("metadata.labels['", "/metadata/labels"),
        ("metadata.annotations['", "/metadata/annotations"),
    ] {
        if let Some(key) = path.strip_prefix(prefix).and_then(|k| k.strip_suffix("']")) {
            return Some(
                str_at(
                    pod,
                    &format!("{map}/{}", key.replace('~', "~0").replace('/', "~1")),
                )
                .to_string(),
            );
        }
    }
    None
}

/// The mode volume files get when neither the volume nor the item names one: 0644, as the
/// kubelet's `defaultMode`.
const DEFAULT_FILE_MODE: u32 = 0o644;

/// The `defaultMode` at `pointer` in a volume, else [`DEFAULT_FILE_MODE`].
fn default_mode(volume: &Value, pointer: &str) -> u32 {
    mode_at(volume, pointer).unwrap_or(DEFAULT_FILE_MODE)
}

/// Writes `bytes` to `dir/path` with `mode` (see [`crate::files::write_atomically`]). `path`
/// must stay inside `dir`: relative, without `..`.
fn write_volume_file(dir: &Path, path: &str, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let relative = Path::new(path);
    let inside = !path.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("volume item path {path:?} must be relative and may not contain '..'"),
        ));
    }
    crate::files::write_atomically(&dir.join(relative), bytes, mode)
}

/// The file mode at `pointer` in `v` (`mode` of an item, `defaultMode` of a volume).
fn mode_at(v: &Value, pointer: &str) -> Option<u32> {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .and_then(|m| u32::try_from(m & 0o777).ok())
}

fn write_items(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<Value>>,
    default_mode: u32,
) -> std::io::Result<()> {
    match items {
        Some(items) => {
            for item in items {
                let key = str_at(item, "/key");
                let path = str_at(item, "/path");
                let mode = mode_at(item, "/mode").unwrap_or(default_mode);
                if let Some(bytes) = data.get(key) {
                    write_volume_file(dir, if path.is_empty() { key } else { path }, bytes, mode)?;
                }
            }
        }
        None => {
            for (k, v) in data {
                write_volume_file(dir, k, v, default_mode)?;
            }
        }
    }
    Ok(())
}

/// Creates the pod's volumes under `pod_dir/volumes` (claims under `claims_dir`); returns
/// each volume's local directory.
pub fn materialise_volumes(
    world: &World,
    pod: &Value,
    pod_dir: &Path,
    claims_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, Unstartable> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut out = BTreeMap::new();
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let io = |e: std::io::Error| Unstartable::Waiting("ContainerCreating", format!("{e}"));
    for v in &volumes {
        let name = str_at(v, "/name");
        let mut dir = pod_dir.join("volumes").join(name);
        let optional = |p: &str| v.pointer(p).and_then(Value::as_bool) == Some(true);
        if let Some(cm) = v.get("configMap") {
            std::fs::create_dir_all(&dir).map_err(io)?;
            let cm_name = str_at(cm, "/name");
            match get_ref(world, Kind::ConfigMap, ns, cm_name) {
                Some(obj) => write_items(
                    &dir,
                    &object_data(&obj, Kind::ConfigMap),
                    cm.get("items").and_then(Value::as_array),
                    default_mode(cm, "/defaultMode"),
                )
                .map_err(io)?,
                None if optional("/configMap/optional") => {}
                None => {
                    return Err(Unstartable::Waiting(
                        "ContainerCreating",
                        format!("MountVolume.SetUp failed for volume {name:?} : configmap {cm_name:?} not found"),
                    ))
                }
            }
        } else if let Some(s) = v.get("secret") {
            std::fs::create_dir_all(&dir).map_err(io)?;
            let s_name = str_at(s, "/secretName");
            match get_ref(world, Kind::Secret, ns, s_name) {
                Some(obj) => write_items(
                    &dir,
                    &object_data(&obj, Kind::Secret),
                    s.get("items").and_then(Value::as_array),
                    default_mode(s, "/defaultMode"),
                )
                .map_err(io)?,
                None if optional("/secret/optional") => {}
                None => {
                    return Err(Unstartable::Waiting(
                        "ContainerCreating",
                        format!("MountVolume.SetUp failed for volume {name:?} : secret {s_name:?} not found"),
                    ))
                }
            }
        } else if let Some(d) = v.get("downwardAPI") {
            std::fs::create_dir_all(&dir).map_err(io)?;
            write_downward(pod, &dir, d).map_err(io)?;
        } else if let Some(p) = v.get("projected") {
            std::fs::create_dir_all(&dir).map_err(io)?;
            for src in p
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(cm) = src.get("configMap") {
                    if let Some(obj) = get_ref(world, Kind::ConfigMap, ns, str_at(cm, "/name")) {
                        write_items(
                            &dir,
                            &object_data(&obj, Kind::ConfigMap),
                            cm.get("items").and_then(Value::as_array),
                            default_mode(p, "/defaultMode"),
                        )
                        .map_err(io)?;
                    }
                } else if let Some(s) = src.get("secret") {
                    if let Some(obj) = get_ref(world, Kind::Secret, ns, str_at(s, "/name")) {
                        write_items(
                            &dir,
                            &object_data(&obj, Kind::Secret),
                            s.get("items").and_then(Value::as_array),
                            default_mode(p, "/defaultMode"),
                        )
                        .map_err(io)?;
                    }
                } else if let Some(d) = src.get("downwardAPI") {
                    write_downward(pod, &dir, d).map_err(io)?;
                }
                // serviceAccountToken: no token is issued to local processes.
            }
        } else if let Some(c) = v.get("persistentVolumeClaim") {
            dir = claims_dir.join(ns).join(str_at(c, "/claimName"));
            std::fs::create_dir_all(&dir).map_err(io)?;
        } else if let Some(h) = v.get("hostPath") {
            dir = PathBuf::from(str_at(h, "/path"));
        } else {
            // emptyDir and anything else: an empty directory.
            std::fs::create_dir_all(&dir).map_err(io)?;
        }
        out.insert(name.to_string(), dir);
    }
    Ok(out)
}

fn write_downward(pod: &Value, dir: &Path, d: &Value) -> std::io::Result<()> {
    for item in d
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = str_at(item, "/path");
        let field = str_at(item, "/fieldRef/fieldPath");
        if let Some(value) = field_ref(pod, field, "127.0.0.1") {
            let mode = mode_at(item, "/mode").unwrap_or_else(|| default_mode(d, "/defaultMode"));
            write_volume_file(dir, path, value.as_bytes(), mode)?;
        }
    }
    Ok(())
}

/// The environment of a container: `envFrom`, then `env` (later entries win), `$(VAR)`
/// expanded against what came before, plus `PATH` and `HOSTNAME`.
pub fn container_env(
    world: &World,
    pod: &Value,
    c: &Value,
    pod_ip: &str,
) -> Result<BTreeMap<String, String>, Unstartable> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    let hostname = match str_at(pod, "/spec/hostname") {
        "" => str_at(pod, "/metadata/name"),
        h => h,
    };
    env.insert("HOSTNAME".into(), hostname.to_string());
    let missing = |what: String| Unstartable::Waiting("CreateContainerConfigError", what);
    for from in c
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = str_at(from, "/prefix");
        for (field, kind) in [
            ("configMapRef", Kind::ConfigMap),
            ("secretRef", Kind::Secret),
        ] {
            let Some(r) = from.get(field) else { continue };
            let name = str_at(r, "/name");
            match get_ref(world, kind, ns, name) {
                Some(obj) => {
                    for (k, v) in object_data(&obj, kind) {
                        env.insert(format!("{prefix}{k}"), String::from_utf8_lossy(&v).into());
                    }
                }
                None if r.get("optional").and_then(Value::as_bool) == Some(true) => {}
                None => {
                    let what = if kind == Kind::ConfigMap {
                        "configmap"
                    } else {
                        "secret"
                    };
                    return Err(missing(format!("{what} {name:?} not found")));
                }
            }
        }
    }
    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(e, "/name").to_string();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            expand(v, &env)
        } else if let Some(from) = e.get("valueFrom") {
            let keyed = |field: &str, kind: Kind| -> Result<Option<String>, Unstartable> {
                let Some(r) = from.get(field) else {
                    return Ok(None);
                };
                let obj_name = str_at(r, "/name");
                let key = str_at(r, "/key");
                let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
                let value = get_ref(world, kind, ns, obj_name)
                    .and_then(|o| object_data(&o, kind).remove(key));
                match value {
                    Some(v) => Ok(Some(String::from_utf8_lossy(&v).into())),
                    None if optional => Ok(Some(String::new())),
                    None => Err(missing(format!(
                        "couldn't find key {key} in {} {ns}/{obj_name}",
                        if kind == Kind::ConfigMap {
                            "ConfigMap"
                        } else {
                            "Secret"
                        }
                    ))),
                }
            };
            if let Some(v) = keyed("configMapKeyRef", Kind::ConfigMap)? {
                v
            } else if let Some(v) = keyed("secretKeyRef", Kind::Secret)? {
                v
            } else if let Some(f) = from.get("fieldRef") {
                field_ref(pod, str_at(f, "/fieldPath"), pod_ip).unwrap_or_default()
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.insert(name, value);
    }
    Ok(env)
}

/// The command line of a container in the process runtime.
pub fn launch(
    world: &World,
    pod: &Value,
    c: &Value,
    volumes: &BTreeMap<String, PathBuf>,
    pod_dir: &Path,
    pod_ip: &str,
) -> Result<Launch, Unstartable> {
    let image = str_at(c, "/image");
    let kind = map_image(image).ok_or_else(|| {
        Unstartable::Fatal(
            "ImageNotSupported",
            format!(
                "image {image:?} cannot run in the process runtime: it runs only {KNOWN_IMAGES} images, with local commands"
            ),
        )
    })?;
    let env = container_env(world, pod, c, pod_ip)?;
    let mut mounts: Vec<(String, PathBuf)> = c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let dir = volumes.get(str_at(m, "/name"))?;
            let sub = str_at(m, "/subPath");
            let local = if sub.is_empty() {
                dir.clone()
            } else {
                dir.join(sub)
            };
            Some((str_at(m, "/mountPath").to_string(), local))
        })
        .collect();
    mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    let words = |key: &str| -> Vec<String> {
        c.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| rewrite_paths(&expand(s, &env), &mounts))
            .collect()
    };
    // These images have no entrypoint: `args` alone replace their default command.
    let mut line = words("command");
    line.extend(words("args"));
    if line.is_empty() {
        line.push(match kind {
            ImageKind::Python => "python3".into(),
            ImageKind::Shell => "sh".into(),
        });
    }
    let mut program = line.remove(0);
    if kind == ImageKind::Python && is_python(&program) {
        program = "python3".into();
    } else if program.starts_with('/') && !Path::new(&program).exists() {
        // An absolute path inside the image: the tool of the same name on this machine.
        program = program.rsplit('/').next().unwrap_or(&program).to_string();
    }
    let env = env
        .into_iter()
        .map(|(k, v)| (k, rewrite_paths(&v, &mounts)))
        .collect();
    let cwd = match c.get("workingDir").and_then(Value::as_str) {
        Some(w) if !w.is_empty() => PathBuf::from(rewrite_paths(w, &mounts)),
        _ => pod_dir.to_path_buf(),
    };
    let cwd = if cwd.is_dir() {
        cwd
    } else {
        pod_dir.to_path_buf()
    };
    Ok(Launch {
        program,
        args: line,
        env,
        cwd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn volume_files_get_their_mode_from_the_first_byte_and_stay_inside_the_volume() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "volume-files-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir(&dir).expect("scratch dir");
        let mode_of = |p: &str| {
            std::fs::metadata(dir.join(p))
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        let data: BTreeMap<String, Vec<u8>> = [
            ("token".to_string(), b"s3cret".to_vec()),
            ("ca.crt".to_string(), b"pem".to_vec()),
        ]
        .into();

        write_items(&dir, &data, None, DEFAULT_FILE_MODE).expect("write");
        assert_eq!(mode_of("token"), 0o644, "the kubelet's default");
        // A Secret volume with defaultMode 0400 (256) and one item at 0600 (384).
        let secret = serde_json::json!({"defaultMode": 256, "items": [
            {"key": "token", "path": "token"},
            {"key": "ca.crt", "path": "nested/ca.crt", "mode": 384}
        ]});
        write_items(
            &dir,
            &data,
            secret.get("items").and_then(Value::as_array),
            default_mode(&secret, "/defaultMode"),
        )
        .expect("write again");
        assert_eq!(
            mode_of("token"),
            0o400,
            "an existing file takes the new mode"
        );
        assert_eq!(std::fs::read(dir.join("token")).expect("read"), b"s3cret");
        assert_eq!(mode_of("nested/ca.crt"), 0o600);

        for bad in ["../escape", "/etc/x", "a/../../escape", ""] {
            let items = vec![serde_json::json!({"key": "token", "path": bad})];
            let key_only = bad.is_empty();
            let err = write_items(&dir, &data, Some(&items), DEFAULT_FILE_MODE);
            if key_only {
                // An empty path means the key's own name.
                err.expect("the key as the path");
            } else {
                assert!(err.is_err(), "{bad:?} is refused");
            }
        }
        assert!(!dir.parent().expect("parent").join("escape").exists());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn images_map_by_repository_name() {
        assert_eq!(map_image("python:3"), Some(ImageKind::Python));
        assert_eq!(
            map_image("docker.io/library/python:3.12-slim"),
            Some(ImageKind::Python)
        );
        assert_eq!(map_image("busybox"), Some(ImageKind::Shell));
        assert_eq!(map_image("alpine@sha256:abc"), Some(ImageKind::Shell));
        assert_eq!(map_image("nginx:1.27"), None);
        assert_eq!(map_image("registry.local:5000/team/app:v1"), None);
        assert!(
            is_python("python3.12") && is_python("/usr/local/bin/python") && !is_python("pythonic")
        );
    }

    #[test]
    fn mount_paths_are_rewritten_as_whole_components() {
        let mounts = vec![("/hooks".to_string(), PathBuf::from("/tmp/p/volumes/hooks"))];
        assert_eq!(
            rewrite_paths("/hooks/sync.py", &mounts),
            "/tmp/p/volumes/hooks/sync.py"
        );
        assert_eq!(
            rewrite_paths("--file=/hooks/a", &mounts),
            "--file=/tmp/p/volumes/hooks/a"
        );
        assert_eq!(
            rewrite_paths("cat /hooks", &mounts),
            "cat /tmp/p/volumes/hooks"
        );
        assert_eq!(rewrite_paths("/hooksmith/x", &mounts), "/hooksmith/x");
        assert_eq!(rewrite_paths("/data/hooks/x", &mounts), "/data/hooks/x");
    }

    #[test]
    fn variable_references_expand() {
        let env: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
    }
}
