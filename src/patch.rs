//! A [`Plan`] → RFC 6902 JSON Patch operations against the raw pod JSON.
//!
//! Only `add` operations are emitted: `add` creates a missing member,
//! replaces an existing one (the `value` of an existing `LD_PRELOAD`
//! entry, replaced by the merged list with the shim first), and inserts
//! into arrays, which covers every change the plan makes. Paths are built from the shape the plan saw
//! (missing `metadata`, `annotations`, `volumes`, `initContainers`, `env`,
//! `volumeMounts` are created whole), so the patch applies to exactly the
//! object it was planned for, and fields this code does not know are never
//! touched.
//!
//! [`mutate`] is the one path every pod takes, in the webhook and in
//! `forcebacklog inject`: annotations → plan → operations.

use crate::annotations::{self, Defaults};
use crate::config::InjectConfig;
use crate::plan::{
    self, Add, BINARY_VOLUME_SIZE_LIMIT, BinaryInstall, ContainerWork, EnvEdit,
    INIT_CONTAINER_NAME, INSTALL_BINARY_FLAG, INSTALL_COMMAND, InitResources, List,
    METRICS_COMMAND, METRICS_CONTAINER_NAME, MOUNT_PATH, Plan, PodView, PullSecrets, StatusAt,
    VOLUME_NAME, Verdict,
};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

/// One RFC 6902 operation (always `add`). The value is kept as JSON text:
/// it is written into the response as it is, without building a tree.
#[derive(Debug, Clone, Serialize)]
pub struct Op {
    /// The operation: `add`.
    pub op: &'static str,
    /// The JSON Pointer (RFC 6901) of the target.
    pub path: String,
    /// The value to add, as JSON.
    pub value: Box<RawValue>,
}

impl PartialEq for Op {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.path == other.path && self.value.get() == other.value.get()
    }
}

impl Op {
    fn add(path: String, value: &impl Serialize) -> Self {
        Op {
            op: "add",
            path,
            value: raw(value),
        }
    }

    /// The value as a JSON tree.
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.value.get())
    }
}

/// JSON text of one of the values below.
fn raw(value: &impl Serialize) -> Box<RawValue> {
    // The values are strings, numbers, booleans and structs of them with
    // string keys: serialising them into a String cannot fail.
    serde_json::value::to_raw_value(value).expect("plain data serialises to JSON")
}

/// The outcome of the mutation core for one pod.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// The decision.
    pub verdict: Verdict,
    /// The JSON Patch operations (empty: the pod stays as it is).
    pub ops: Vec<Op>,
    /// Admission warnings.
    pub warnings: Vec<String>,
}

/// The one path of every pod: annotations → plan → operations.
pub fn mutate(pod: &PodView<'_>, defaults: Defaults, config: &InjectConfig) -> Mutation {
    let plan = plan::plan(pod, defaults, config);
    let ops = operations(&plan, config);
    Mutation {
        verdict: plan.verdict,
        ops,
        warnings: plan.warnings,
    }
}

/// Escapes one JSON Pointer reference token (`~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `{"forcebacklog/status": …}`.
#[derive(Serialize)]
struct StatusAnnotation<'a> {
    #[serde(rename = "forcebacklog/status")]
    status: &'a str,
}

/// `{"annotations": {"forcebacklog/status": …}}`.
#[derive(Serialize)]
struct StatusMetadata<'a> {
    annotations: StatusAnnotation<'a>,
}

#[derive(Serialize)]
struct EnvVar<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct Mount {
    name: &'static str,
    #[serde(rename = "mountPath")]
    mount_path: &'static str,
    #[serde(rename = "readOnly", skip_serializing_if = "Option::is_none")]
    read_only: Option<bool>,
}

/// The read-only mount of app containers.
const APP_MOUNT: Mount = Mount {
    name: VOLUME_NAME,
    mount_path: MOUNT_PATH,
    read_only: Some(true),
};

#[derive(Serialize)]
struct Volume<'a> {
    name: &'static str,
    #[serde(rename = "emptyDir")]
    empty_dir: EmptyDir<'a>,
}

#[derive(Serialize)]
struct EmptyDir<'a> {
    #[serde(rename = "sizeLimit")]
    size_limit: &'a str,
}

#[derive(Serialize)]
struct InitContainer<'a> {
    name: &'static str,
    image: &'a str,
    #[serde(rename = "imagePullPolicy", skip_serializing_if = "Option::is_none")]
    image_pull_policy: Option<&'a str>,
    command: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources<'a>>,
    #[serde(rename = "securityContext")]
    security_context: SecurityContext,
    #[serde(rename = "volumeMounts")]
    volume_mounts: [Mount; 1],
    #[serde(rename = "terminationMessagePolicy")]
    termination_message_policy: &'static str,
}

/// The metrics sidecar: a native sidecar (`restartPolicy: Always`).
#[derive(Serialize)]
struct MetricsContainer<'a> {
    name: &'static str,
    image: &'a str,
    #[serde(rename = "imagePullPolicy", skip_serializing_if = "Option::is_none")]
    image_pull_policy: Option<&'a str>,
    command: [&'a str; 4],
    #[serde(rename = "restartPolicy")]
    restart_policy: &'static str,
    ports: [ContainerPort; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources<'a>>,
    #[serde(rename = "securityContext")]
    security_context: SecurityContext,
    #[serde(rename = "terminationMessagePolicy")]
    termination_message_policy: &'static str,
}

#[derive(Serialize)]
struct ContainerPort {
    name: &'static str,
    #[serde(rename = "containerPort")]
    container_port: u16,
    protocol: &'static str,
}

/// The name of the metrics sidecar's port (for a PodMonitor).
pub const METRICS_PORT_NAME: &str = "fb-metrics";

/// `{"name": …}` (an `imagePullSecrets` entry).
#[derive(Serialize)]
struct NameRef<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Resources<'a> {
    requests: Quantities<'a>,
    limits: Quantities<'a>,
}

#[derive(Serialize, Clone, Copy)]
struct Quantities<'a> {
    cpu: &'a str,
    memory: &'a str,
}

/// Pod Security "restricted".
#[derive(Serialize)]
struct SecurityContext {
    #[serde(rename = "runAsNonRoot")]
    run_as_non_root: bool,
    #[serde(rename = "runAsUser")]
    run_as_user: u32,
    #[serde(rename = "runAsGroup")]
    run_as_group: u32,
    #[serde(rename = "allowPrivilegeEscalation")]
    allow_privilege_escalation: bool,
    #[serde(rename = "readOnlyRootFilesystem")]
    read_only_root_filesystem: bool,
    capabilities: Capabilities,
    #[serde(rename = "seccompProfile")]
    seccomp_profile: SeccompProfile,
}

#[derive(Serialize)]
struct Capabilities {
    drop: [&'static str; 1],
}

#[derive(Serialize)]
struct SeccompProfile {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The user and group the init container runs as (distroless `nonroot`).
const INIT_USER: u32 = 65532;

/// Renders a plan as operations, in an order where every path is valid
/// when its operation runs: status, volume, containers (original
/// indices), and last the init container inserted at index 0.
pub fn operations(plan: &Plan, config: &InjectConfig) -> Vec<Op> {
    let work = &plan.work;
    let mut ops = Vec::with_capacity(3 + work.containers.len() * 4);
    if let Some(status) = &plan.status {
        let value = status.value.as_str();
        ops.push(match status.at {
            StatusAt::NoMetadata => Op::add(
                "/metadata".to_owned(),
                &StatusMetadata {
                    annotations: StatusAnnotation { status: value },
                },
            ),
            StatusAt::NoAnnotations => Op::add(
                "/metadata/annotations".to_owned(),
                &StatusAnnotation { status: value },
            ),
            StatusAt::Annotations => Op::add(
                format!("/metadata/annotations/{}", escape(annotations::STATUS)),
                &value,
            ),
        });
    }
    let needs_config = work.volume != Add::Nothing || work.init_container != Add::Nothing;
    let rendered = needs_config.then(|| Rendered::get(config));
    let with_binary = work.binary == BinaryInstall::WithInitContainer;
    if let Some(r) = &rendered {
        let volume = if with_binary {
            &r.volume_with_binary
        } else {
            &r.volume
        };
        push_add(&mut ops, work.volume, "/spec/volumes", "-", volume);
    }
    pull_secret_ops(&mut ops, &work.pull_secrets);
    let mount = app_mount();
    for container in &work.containers {
        container_ops(&mut ops, container, mount);
    }
    if let BinaryInstall::AppendFlag { index } = work.binary {
        ops.push(Op::add(
            format!("/spec/initContainers/{index}/command/-"),
            &INSTALL_BINARY_FLAG,
        ));
    }
    if let Some(r) = &rendered {
        let init_container = match (work.init_resources, with_binary) {
            (InitResources::RequestsEqualLimits, false) => &r.init_container,
            (InitResources::Unset, false) => &r.init_container_without_resources,
            (InitResources::RequestsEqualLimits, true) => &r.init_container_with_binary,
            (InitResources::Unset, true) => &r.init_container_with_binary_without_resources,
        };
        push_add(
            &mut ops,
            work.init_container,
            "/spec/initContainers",
            "0",
            init_container,
        );
    }
    if let Some(sidecar) = &work.metrics {
        let address = format!("0.0.0.0:{}", sidecar.port);
        ops.push(Op::add(
            format!("/spec/initContainers/{}", sidecar.index),
            &metrics_container(config, sidecar.port, &address, work.init_resources),
        ));
    }
    ops
}

/// The metrics sidecar running `forcebacklog sockets --serve ADDRESS`:
/// Pod Security "restricted", sized like the init container.
fn metrics_container<'a>(
    config: &'a InjectConfig,
    port: u16,
    address: &'a str,
    sizing: InitResources,
) -> MetricsContainer<'a> {
    let [program, sockets, serve] = METRICS_COMMAND;
    MetricsContainer {
        name: METRICS_CONTAINER_NAME,
        image: &config.image,
        image_pull_policy: config.image_pull_policy.as_deref(),
        command: [program, sockets, serve, address],
        restart_policy: "Always",
        ports: [ContainerPort {
            name: METRICS_PORT_NAME,
            container_port: port,
            protocol: "TCP",
        }],
        resources: resources(config, sizing),
        security_context: restricted(),
        termination_message_policy: "FallbackToLogsOnError",
    }
}

/// Requests = limits from the configuration, or none for a BestEffort pod.
fn resources(config: &InjectConfig, sizing: InitResources) -> Option<Resources<'_>> {
    let quantities = Quantities {
        cpu: &config.init_resources.cpu,
        memory: &config.init_resources.memory,
    };
    match sizing {
        InitResources::RequestsEqualLimits => Some(Resources {
            requests: quantities,
            limits: quantities,
        }),
        InitResources::Unset => None,
    }
}

/// Pod Security "restricted", as the user of the image.
fn restricted() -> SecurityContext {
    SecurityContext {
        run_as_non_root: true,
        run_as_user: INIT_USER,
        run_as_group: INIT_USER,
        allow_privilege_escalation: false,
        read_only_root_filesystem: true,
        capabilities: Capabilities { drop: ["ALL"] },
        seccomp_profile: SeccompProfile {
            kind: "RuntimeDefault",
        },
    }
}

/// The missing image pull secrets: appended, or the list created.
fn pull_secret_ops(ops: &mut Vec<Op>, secrets: &PullSecrets) {
    let refs: Vec<NameRef<'_>> = secrets.names.iter().map(|name| NameRef { name }).collect();
    match secrets.at {
        Add::Nothing => {}
        Add::Into => {
            for name in &refs {
                ops.push(Op::add("/spec/imagePullSecrets/-".to_owned(), name));
            }
        }
        Add::Create => ops.push(Op::add("/spec/imagePullSecrets".to_owned(), &refs)),
    }
}

/// The JSON text of one element to add to an array, alone and as a
/// one-element array (for an array that does not exist yet).
#[derive(Debug)]
struct Element {
    alone: Box<RawValue>,
    listed: Box<RawValue>,
}

impl Element {
    fn new(element: &impl Serialize) -> Self {
        Element {
            alone: raw(element),
            listed: raw(&[element]),
        }
    }
}

/// The values that depend only on the configuration, rendered to JSON
/// text once instead of for every pod.
#[derive(Debug)]
struct Rendered {
    /// The configuration they were rendered from.
    from: InjectConfig,
    volume: Element,
    init_container: Element,
    /// For a pod that sets no resources (BestEffort).
    init_container_without_resources: Element,
    /// For `forcebacklog/method: supervise`: the volume sized for the binary.
    volume_with_binary: Element,
    /// For `forcebacklog/method: supervise`: the shim and the whole binary.
    init_container_with_binary: Element,
    /// Both of the above.
    init_container_with_binary_without_resources: Element,
}

thread_local! {
    /// The last configuration's rendering, per thread (the webhook's
    /// workers and `inject` use one configuration for their lifetime).
    /// The configuration's fields are public and may change between
    /// calls, so it is compared each time (a few short strings) rather
    /// than trusted.
    static RENDERED: RefCell<Option<Rc<Rendered>>> = const { RefCell::new(None) };
}

impl Rendered {
    fn new(config: &InjectConfig) -> Self {
        Rendered {
            from: config.clone(),
            volume: Element::new(&volume(&config.volume_size_limit)),
            init_container: Element::new(&init_container(
                config,
                InitResources::RequestsEqualLimits,
                &INSTALL_COMMAND,
            )),
            init_container_without_resources: Element::new(&init_container(
                config,
                InitResources::Unset,
                &INSTALL_COMMAND,
            )),
            volume_with_binary: Element::new(&volume(BINARY_VOLUME_SIZE_LIMIT)),
            init_container_with_binary: Element::new(&init_container(
                config,
                InitResources::RequestsEqualLimits,
                &INSTALL_WITH_BINARY,
            )),
            init_container_with_binary_without_resources: Element::new(&init_container(
                config,
                InitResources::Unset,
                &INSTALL_WITH_BINARY,
            )),
        }
    }

    /// The rendering of `config`, from the cache when it was rendered last.
    fn get(config: &InjectConfig) -> Rc<Rendered> {
        RENDERED.with(|slot| {
            let mut slot = slot.borrow_mut();
            match &*slot {
                Some(r) if r.from == *config => Rc::clone(r),
                _ => {
                    let r = Rc::new(Rendered::new(config));
                    *slot = Some(Rc::clone(&r));
                    r
                }
            }
        })
    }
}

/// The read-only mount of app containers, rendered once.
fn app_mount() -> &'static Element {
    static APP_MOUNT_JSON: OnceLock<Element> = OnceLock::new();
    APP_MOUNT_JSON.get_or_init(|| Element::new(&APP_MOUNT))
}

/// Adds `element` to the array at `array`: at `position` when it exists,
/// as a new one-element array when it does not.
fn push_add(ops: &mut Vec<Op>, add: Add, array: &str, position: &str, element: &Element) {
    match add {
        Add::Nothing => {}
        Add::Into => ops.push(Op {
            op: "add",
            path: format!("{array}/{position}"),
            value: element.alone.clone(),
        }),
        Add::Create => ops.push(Op {
            op: "add",
            path: array.to_owned(),
            value: element.listed.clone(),
        }),
    }
}

fn container_ops(ops: &mut Vec<Op>, c: &ContainerWork, mount: &Element) {
    let list = match c.list {
        List::Containers => "containers",
        List::InitContainers => "initContainers",
    };
    let base = format!("/spec/{list}/{}", c.index);
    push_add(ops, c.mount, &format!("{base}/volumeMounts"), "-", mount);
    if let Some(prefix) = &c.command_prefix {
        // Inserted before the command's own elements, which stay untouched.
        for (i, element) in prefix.iter().enumerate() {
            ops.push(Op::add(format!("{base}/command/{i}"), element));
        }
    }
    let mut new_vars = Vec::new();
    for edit in &c.env {
        match edit {
            EnvEdit::Add { name, value } => new_vars.push(EnvVar { name, value }),
            EnvEdit::SetValue { index, value } => {
                ops.push(Op::add(format!("{base}/env/{index}/value"), value));
            }
        }
    }
    if new_vars.is_empty() {
        return;
    }
    if c.env_present {
        for var in &new_vars {
            ops.push(Op::add(format!("{base}/env/-"), var));
        }
    } else {
        ops.push(Op::add(format!("{base}/env"), &new_vars));
    }
}

/// The emptyDir volume that holds the shim (and the binary).
fn volume(size_limit: &str) -> Volume<'_> {
    Volume {
        name: VOLUME_NAME,
        empty_dir: EmptyDir { size_limit },
    }
}

/// The init container's command that also copies the whole binary.
const INSTALL_WITH_BINARY: [&str; 4] = [
    INSTALL_COMMAND[0],
    INSTALL_COMMAND[1],
    INSTALL_COMMAND[2],
    INSTALL_BINARY_FLAG,
];

/// The install-shim init container: Pod Security "restricted"; requests =
/// limits, or no resources at all for a BestEffort pod.
fn init_container<'a>(
    config: &'a InjectConfig,
    sizing: InitResources,
    command: &'a [&'static str],
) -> InitContainer<'a> {
    let quantities = Quantities {
        cpu: &config.init_resources.cpu,
        memory: &config.init_resources.memory,
    };
    let resources = match sizing {
        InitResources::RequestsEqualLimits => Some(Resources {
            requests: quantities,
            limits: quantities,
        }),
        InitResources::Unset => None,
    };
    InitContainer {
        name: INIT_CONTAINER_NAME,
        image: &config.image,
        image_pull_policy: config.image_pull_policy.as_deref(),
        command,
        resources,
        security_context: SecurityContext {
            run_as_non_root: true,
            run_as_user: INIT_USER,
            run_as_group: INIT_USER,
            allow_privilege_escalation: false,
            read_only_root_filesystem: true,
            capabilities: Capabilities { drop: ["ALL"] },
            seccomp_profile: SeccompProfile {
                kind: "RuntimeDefault",
            },
        },
        volume_mounts: [Mount {
            name: VOLUME_NAME,
            mount_path: MOUNT_PATH,
            read_only: None,
        }],
        termination_message_policy: "FallbackToLogsOnError",
    }
}

/// Why operations could not be applied to a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The operation is not `add` (the only kind this module emits).
    #[error("unsupported JSON Patch operation {op:?} at {path}")]
    Unsupported {
        /// The operation.
        op: String,
        /// Its path.
        path: String,
    },
    /// The value is not JSON.
    #[error("JSON Patch value at {path} is not JSON: {message}")]
    Value {
        /// The path of the operation.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The path does not lead to an existing parent, or the index is out of range.
    #[error("JSON Patch path {0} does not exist in the document")]
    NoSuchPath(String),
}

/// Applies `add` operations to a document (RFC 6902 semantics), as
/// `inject` does with the operations [`mutate`] returns.
pub fn apply(doc: &mut Value, ops: &[Op]) -> Result<(), ApplyError> {
    for op in ops {
        if op.op != "add" {
            return Err(ApplyError::Unsupported {
                op: op.op.to_owned(),
                path: op.path.clone(),
            });
        }
        let value = op.value().map_err(|e| ApplyError::Value {
            path: op.path.clone(),
            message: e.to_string(),
        })?;
        add(doc, &op.path, value)?;
    }
    Ok(())
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApplyError> {
    let missing = || ApplyError::NoSuchPath(path.to_owned());
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(missing());
    };
    let mut tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let last = tokens.pop().ok_or_else(missing)?;
    let mut parent = doc;
    for token in &tokens {
        parent = match parent {
            Value::Object(map) => map.get_mut(token.as_str()).ok_or_else(missing)?,
            Value::Array(items) => {
                let i = array_index(token, items.len()).ok_or_else(missing)?;
                items.get_mut(i).ok_or_else(missing)?
            }
            _ => return Err(missing()),
        };
    }
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => {
            let i = array_index(&last, items.len() + 1).ok_or_else(missing)?;
            items.insert(i, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

/// An RFC 6901 array index below `bound` (no leading zeros, no sign).
fn array_index(token: &str, bound: usize) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok().filter(|&i| i < bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde::Deserialize;
    use serde_json::json;

    const ANNOTATED: Defaults = Defaults {
        backlog: 4096,
        implicit: false,
    };

    /// Runs the core on `pod`, applies the patch with the json-patch crate
    /// AND with [`apply`] (both must agree), checks the result is a valid
    /// k8s-openapi Pod and that a second run changes nothing.
    fn run(pod: &Value, defaults: Defaults) -> (Mutation, Value) {
        let config = InjectConfig::default();
        let text = pod.to_string();
        let view: PodView<'_> = serde_json::from_str(&text).expect("view");
        let m = mutate(&view, defaults, &config);
        let wire = serde_json::to_value(&m.ops).expect("ops serialise");
        let patch: json_patch::Patch = serde_json::from_value(wire).expect("a JSON Patch");
        let mut by_crate = pod.clone();
        json_patch::patch(&mut by_crate, &patch).expect("patch applies");
        let mut by_us = pod.clone();
        apply(&mut by_us, &m.ops).expect("our applier");
        assert_eq!(by_crate, by_us, "json-patch and apply() agree");
        let _: Pod = serde_json::from_value(by_crate.clone()).expect("result is a Pod");
        // Idempotent: the mutated pod yields no operations.
        let text = by_crate.to_string();
        let view: PodView<'_> = serde_json::from_str(&text).expect("view");
        let again = mutate(&view, defaults, &config);
        assert!(again.ops.is_empty(), "second run: {:?}", again.ops);
        (m, by_crate)
    }

    fn env_of(pod: &Value, list: &str, i: usize) -> Vec<(String, String)> {
        pod["spec"][list][i]["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["name"].as_str().unwrap_or_default().to_owned(),
                            e["value"].as_str().unwrap_or("<valueFrom>").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn escape_tokens() {
        assert_eq!(escape("forcebacklog/status"), "forcebacklog~1status");
        assert_eq!(escape("a~b/c"), "a~0b~1c");
    }

    #[test]
    fn minimal_pod_every_shape_missing() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {"forcebacklog/value": "234"}},
            "spec": {"containers": [{"name": "web", "image": "python:3.12-slim"}]}});
        let (m, out) = run(&pod, ANNOTATED);
        assert_eq!(m.verdict, Verdict::Inject);
        let paths: Vec<&str> = m.ops.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/metadata/annotations/forcebacklog~1status",
                "/spec/volumes",
                "/spec/containers/0/volumeMounts",
                "/spec/containers/0/env",
                "/spec/initContainers",
            ]
        );
        assert_eq!(
            out["metadata"]["annotations"]["forcebacklog/status"],
            "injected"
        );
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "forcebacklog-shim", "emptyDir": {"sizeLimit": "1Mi"}}])
        );
        assert_eq!(
            out["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "forcebacklog-shim", "mountPath": "/opt/forcebacklog", "readOnly": true}])
        );
        assert_eq!(
            env_of(&out, "containers", 0),
            [
                ("BACKLOG".into(), "234".into()),
                (
                    "LD_PRELOAD".into(),
                    "/opt/forcebacklog/libforcebacklog.so".into()
                )
            ]
        );
        let init = &out["spec"]["initContainers"][0];
        assert_eq!(
            init,
            &json!({
                "name": "forcebacklog-install",
                "image": crate::config::DEFAULT_IMAGE,
                "command": ["/forcebacklog", "install-shim", "/opt/forcebacklog"],
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                    "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
                "volumeMounts": [{"name": "forcebacklog-shim", "mountPath": "/opt/forcebacklog"}],
                "terminationMessagePolicy": "FallbackToLogsOnError"
            }),
            "a pod without resources (BestEffort) gets an init container without any"
        );
        // The image field is the only other thing in the container, untouched.
        assert_eq!(out["spec"]["containers"][0]["image"], "python:3.12-slim");

        // A pod that sets resources: requests = limits, the configured ones.
        let mut sized = pod.clone();
        sized["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100m"}});
        let (_, out) = run(&sized, ANNOTATED);
        assert_eq!(
            out["spec"]["initContainers"][0]["resources"],
            json!({"requests": {"cpu": "10m", "memory": "16Mi"},
                   "limits": {"cpu": "10m", "memory": "16Mi"}})
        );
    }

    #[test]
    fn missing_metadata_and_annotations_are_created() {
        let ns = Defaults {
            backlog: 300,
            implicit: true,
        };
        let (m, out) = run(&json!({"spec": {"containers": [{"name": "a"}]}}), ns);
        assert_eq!(m.ops[0].path, "/metadata");
        assert_eq!(
            out["metadata"]["annotations"]["forcebacklog/status"],
            "injected"
        );
        let (m, out) = run(
            &json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}]}}),
            ns,
        );
        assert_eq!(m.ops[0].path, "/metadata/annotations");
        assert_eq!(out["metadata"]["name"], "x");
        let (_, out) = run(
            &json!({"metadata": {"name": "x", "annotations": null}, "spec": {"containers": [{"name": "a"}], "volumes": null}}),
            ns,
        );
        assert_eq!(
            out["metadata"]["annotations"]["forcebacklog/status"],
            "injected"
        );
        assert_eq!(out["spec"]["volumes"][0]["name"], "forcebacklog-shim");
    }

    #[test]
    fn existing_arrays_are_appended_and_init_container_goes_first() {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512", "other": "x"}},
        "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "initContainers": [{"name": "migrate", "image": "m"}],
            "containers": [
                {"name": "web", "image": "w", "env": [{"name": "A", "value": "1"}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "worker", "image": "k"}
            ]}});
        let (m, out) = run(&pod, ANNOTATED);
        assert!(m.ops.iter().any(|o| o.path == "/spec/initContainers/0"));
        assert!(m.ops.iter().any(|o| o.path == "/spec/volumes/-"));
        assert!(m.ops.iter().any(|o| o.path == "/spec/containers/0/env/-"));
        let init: Vec<&str> = out["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(init, ["forcebacklog-install", "migrate"]);
        let vols: Vec<&str> = out["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(vols, ["data", "forcebacklog-shim"]);
        assert_eq!(
            env_of(&out, "containers", 0),
            [
                ("A".into(), "1".into()),
                ("BACKLOG".into(), "512".into()),
                (
                    "LD_PRELOAD".into(),
                    "/opt/forcebacklog/libforcebacklog.so".into()
                )
            ]
        );
        assert_eq!(
            out["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "data"
        );
        assert_eq!(
            out["spec"]["containers"][1]["volumeMounts"][0]["readOnly"],
            true
        );
        assert_eq!(out["metadata"]["annotations"]["other"], "x");
    }

    #[test]
    fn native_sidecar_indices_are_taken_before_the_insert() {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512",
                                                      "forcebacklog/containers": "proxy"}},
            "spec": {
                "initContainers": [{"name": "setup"}, {"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "web"}]}});
        let (_, out) = run(&pod, ANNOTATED);
        let init = out["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(init[0]["name"], "forcebacklog-install");
        assert_eq!(init[1]["name"], "setup");
        assert!(init[1].get("env").is_none());
        assert_eq!(init[2]["name"], "proxy");
        assert_eq!(
            env_of(&out, "initContainers", 2)[0],
            ("BACKLOG".into(), "512".into())
        );
        assert!(out["spec"]["containers"][0].get("env").is_none());
    }

    #[test]
    fn reinvocation_never_moves_our_init_container() {
        // First injection: ours goes to index 0, before the named native
        // sidecar, so the sidecar starts after the shim is installed.
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512",
                                                      "forcebacklog/containers": "proxy,web"}},
            "spec": {
                "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "web"}]}});
        let (_, mut out) = run(&pod, ANNOTATED);
        let names = |pod: &Value| -> Vec<String> {
            pod["spec"]["initContainers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names(&out), ["forcebacklog-install", "proxy"]);
        // Another webhook then puts its own init container and a native
        // sidecar first. Re-invoked, forcebacklog changes nothing and does
        // not move its init container back to the front.
        let init = out["spec"]["initContainers"].as_array_mut().unwrap();
        init.insert(0, json!({"name": "mesh-init"}));
        init.insert(0, json!({"name": "mesh-proxy", "restartPolicy": "Always"}));
        let text = out.to_string();
        let view: PodView<'_> = serde_json::from_str(&text).unwrap();
        let again = mutate(&view, ANNOTATED, &InjectConfig::default());
        assert_eq!(again.verdict, Verdict::AlreadyInjected);
        assert!(again.ops.is_empty(), "{:?}", again.ops);
        assert_eq!(
            names(&out),
            ["mesh-proxy", "mesh-init", "forcebacklog-install", "proxy"]
        );

        // A named sidecar that another webhook adds after the first call:
        // skipped then, injected on the re-invocation, ours first.
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512",
                                                      "forcebacklog/containers": "mesh-proxy"}},
            "spec": {"containers": [{"name": "web"}]}});
        let (first, mut out) = run(&pod, ANNOTATED);
        assert!(
            matches!(first.verdict, Verdict::Skip(_)),
            "{:?}",
            first.verdict
        );
        out["spec"]["initContainers"] = json!([{"name": "mesh-proxy", "restartPolicy": "Always"}]);
        let (second, out) = run(&out, ANNOTATED);
        assert_eq!(second.verdict, Verdict::Inject);
        assert_eq!(names(&out), ["forcebacklog-install", "mesh-proxy"]);
        assert_eq!(
            out["metadata"]["annotations"]["forcebacklog/status"],
            "injected"
        );
    }

    #[test]
    fn ld_preload_merge_is_written_and_kept() {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512"}},
        "spec": {"containers": [
            {"name": "a", "env": [{"name": "LD_PRELOAD", "value": "/lib/x.so /lib/y.so"}]},
            {"name": "b", "env": [{"name": "LD_PRELOAD"}]},
            {"name": "c", "env": [{"name": "LD_PRELOAD", "value": "/opt/forcebacklog/libforcebacklog.so:/lib/z.so"}]}
        ]}});
        let (m, out) = run(&pod, ANNOTATED);
        let shim = "/opt/forcebacklog/libforcebacklog.so";
        // The existing value is replaced by the merged list, the shim
        // first: an `add` on an existing member replaces it (RFC 6902 4.1).
        let set: Vec<(&str, Value)> = m
            .ops
            .iter()
            .filter(|o| o.path.ends_with("/value"))
            .map(|o| (o.path.as_str(), o.value().unwrap()))
            .collect();
        assert_eq!(
            set,
            [
                (
                    "/spec/containers/0/env/0/value",
                    json!(format!("{shim} /lib/x.so /lib/y.so"))
                ),
                ("/spec/containers/1/env/0/value", json!(shim)),
            ]
        );
        assert!(m.ops.iter().all(|o| o.op == "add"));
        assert_eq!(
            env_of(&out, "containers", 0),
            [
                ("LD_PRELOAD".into(), format!("{shim} /lib/x.so /lib/y.so")),
                ("BACKLOG".into(), "512".into())
            ]
        );
        assert_eq!(
            env_of(&out, "containers", 1)[0],
            ("LD_PRELOAD".into(), shim.into())
        );
        assert_eq!(
            env_of(&out, "containers", 2)[0],
            ("LD_PRELOAD".into(), format!("{shim}:/lib/z.so"))
        );
    }

    #[test]
    fn unknown_fields_survive() {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512"},
                                      "x-vendor": {"keep": [1, 2, 3]}},
            "spec": {"futureField": {"a": true},
                     "containers": [{"name": "a", "resizePolicy2": [{"z": 1}],
                                     "env": [{"name": "K", "value": "v", "newEnvField": 7}]}]},
            "status": {"phase": "Pending"}});
        let (_, out) = run(&pod, ANNOTATED);
        assert_eq!(out["metadata"]["x-vendor"], json!({"keep": [1, 2, 3]}));
        assert_eq!(out["spec"]["futureField"], json!({"a": true}));
        assert_eq!(
            out["spec"]["containers"][0]["resizePolicy2"],
            json!([{"z": 1}])
        );
        assert_eq!(out["spec"]["containers"][0]["env"][0]["newEnvField"], 7);
        assert_eq!(out["status"], json!({"phase": "Pending"}));
    }

    #[test]
    fn image_pull_policy_and_resources_come_from_config() {
        let config = InjectConfig {
            image: "registry.local/fb:1".into(),
            image_pull_policy: Some("IfNotPresent".into()),
            init_resources: crate::config::InitResources {
                cpu: "20m".into(),
                memory: "32Mi".into(),
            },
            volume_size_limit: "2Mi".into(),
            ..InjectConfig::default()
        };
        let init = serde_json::to_value(init_container(
            &config,
            InitResources::RequestsEqualLimits,
            &INSTALL_COMMAND,
        ))
        .unwrap();
        assert_eq!(init["image"], "registry.local/fb:1");
        assert_eq!(init["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            init["resources"]["limits"],
            json!({"cpu": "20m", "memory": "32Mi"})
        );
        assert_eq!(
            serde_json::to_value(volume(&config.volume_size_limit)).unwrap()["emptyDir"]["sizeLimit"],
            "2Mi"
        );
        let _: k8s_openapi::api::core::v1::Container =
            serde_json::from_value(init).expect("a Container");
    }

    #[test]
    fn a_changed_configuration_is_rendered_again() {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "5"}},
                         "spec": {"containers": [{"name": "a",
                             "resources": {"requests": {"memory": "64Mi"}}}]}});
        let text = pod.to_string();
        let view: PodView<'_> = serde_json::from_str(&text).unwrap();
        let init = |config: &InjectConfig| {
            let ops = mutate(&view, ANNOTATED, config).ops;
            let last = ops.last().unwrap().value().unwrap();
            (
                last[0]["image"].clone(),
                last[0]["resources"]["limits"]["memory"].clone(),
            )
        };
        let mut config = InjectConfig::default();
        assert_eq!(
            init(&config),
            (json!(crate::config::DEFAULT_IMAGE), json!("16Mi"))
        );
        config.image = "registry.local/fb:2".into();
        assert_eq!(init(&config).0, "registry.local/fb:2");
        config.init_resources.memory = "8Mi".into();
        assert_eq!(init(&config).1, "8Mi");
        assert_eq!(init(&InjectConfig::default()).1, "16Mi");
    }

    #[test]
    fn invalid_values_leave_the_pod_unchanged_but_the_status() {
        for bad in ["abc", "0", "70000", "-1", ""] {
            let pod = json!({"metadata": {"annotations": {"forcebacklog/value": bad}},
                             "spec": {"containers": [{"name": "a"}]}});
            let (m, out) = run(&pod, ANNOTATED);
            assert_eq!(m.ops.len(), 1, "{bad}: {:?}", m.ops);
            let mut expected = pod.clone();
            expected["metadata"]["annotations"]["forcebacklog/status"] = json!(format!(
                "skipped: forcebacklog/value: {bad:?} is not a backlog: expected a decimal integer in 1..=65535"
            ));
            assert_eq!(out, expected);
            assert_eq!(m.warnings.len(), 1);
        }
        for (key, bad) in [
            ("forcebacklog/containers", "ghost"),
            ("forcebacklog/mode", "fast"),
            ("forcebacklog/ports", "80,http"),
            ("forcebacklog/containers", ""),
        ] {
            let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "9", key: bad}},
                             "spec": {"containers": [{"name": "a"}]}});
            let (m, out) = run(&pod, ANNOTATED);
            assert!(matches!(
                m.verdict,
                Verdict::Skip(plan::SkipReason::Invalid(_))
            ));
            let status = out["metadata"]["annotations"]["forcebacklog/status"]
                .as_str()
                .unwrap();
            assert!(status.starts_with(&format!("skipped: {key}: ")), "{status}");
            assert!(out["spec"]["containers"][0].get("env").is_none());
            assert!(out["spec"].get("initContainers").is_none());
        }
    }

    #[test]
    fn apply_rejects_bad_paths() {
        let mut doc = json!({"a": [1]});
        let op = |p: &str| Op::add(p.into(), &0);
        assert!(apply(&mut doc, &[op("/b/c")]).is_err());
        assert!(apply(&mut doc, &[op("/a/5")]).is_err());
        assert!(apply(&mut doc, &[op("/a/01")]).is_err());
        assert!(apply(&mut doc, &[op("a")]).is_err());
        assert!(apply(&mut doc, &[op("/a/1")]).is_ok());
        assert_eq!(doc, json!({"a": [1, 0]}));
        let mut bad = op("/x");
        bad.op = "remove";
        assert!(matches!(
            apply(&mut doc, &[bad]),
            Err(ApplyError::Unsupported { .. })
        ));
        assert!(apply(&mut doc, &[op("/k~1e~0y")]).is_ok());
        assert_eq!(doc["k/e~y"], 0);
    }

    #[test]
    fn view_from_value_matches_view_from_bytes() {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "77"}},
                         "spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "é\"q"}]}]}});
        let config = InjectConfig::default();
        let from_value = mutate(&PodView::deserialize(&pod).unwrap(), ANNOTATED, &config);
        let text = pod.to_string();
        let from_bytes = mutate(&serde_json::from_str(&text).unwrap(), ANNOTATED, &config);
        assert_eq!(from_value.ops, from_bytes.ops);
    }
}
