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

use crate::annotations::Defaults;
use crate::config::{InjectConfig, PullPolicy};
use crate::plan::{
    self, Add, BINARY_VOLUME_SIZE_LIMIT, BinaryInstall, ContainerWork, EnvEdit,
    INIT_CONTAINER_NAME, INSTALL_BINARY_FLAG, INSTALL_COMMAND, InitResources, List,
    METRICS_COMMAND, METRICS_CONTAINER_NAME, MOUNT_PATH, Plan, PodView, PullSecrets, StatusAt,
    StatusEdit, VOLUME_NAME, Verdict,
};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

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
pub fn mutate(pod: &PodView<'_>, defaults: Defaults, injector: &Injector) -> Mutation {
    let plan = plan::plan(pod, defaults, injector.config());
    let ops = operations(&plan, injector);
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

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
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
pub fn operations(plan: &Plan, injector: &Injector) -> Vec<Op> {
    let work = &plan.work;
    let mut ops = Vec::with_capacity(3 + work.containers.len() * 4);
    if let Some(status) = &plan.status {
        ops.push(status_op(status));
    }
    let r = injector;
    let with_binary = work.binary == BinaryInstall::WithInitContainer;
    let volume = if with_binary {
        &r.volume_with_binary
    } else {
        &r.volume
    };
    push_add(&mut ops, work.volume, "/spec/volumes", "-", volume);
    pull_secret_ops(&mut ops, &work.pull_secrets);
    let mut entries = EnvEntries::default();
    for container in &work.containers {
        container_ops(&mut ops, container, &r.app_mount, &mut entries);
    }
    if let BinaryInstall::AppendFlag { index } = work.binary {
        ops.push(Op::add(
            path(&[
                "/spec/initContainers/",
                decimal(index, &mut Digits::default()),
                "/command/-",
            ]),
            &INSTALL_BINARY_FLAG,
        ));
    }
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
    if let Some(sidecar) = &work.metrics {
        let address = format!("0.0.0.0:{}", sidecar.port);
        ops.push(Op::add(
            path(&[
                "/spec/initContainers/",
                decimal(sidecar.index, &mut Digits::default()),
            ]),
            &metrics_container(
                &injector.config,
                sidecar.port,
                &address,
                work.init_resources,
            ),
        ));
    }
    ops
}

/// The JSON Pointer of the `forcebacklog/status` annotation.
const STATUS_PATH: &str = "/metadata/annotations/forcebacklog~1status";

/// The operation that writes `forcebacklog/status`, at the level the pod
/// has (no metadata, no annotations, or annotations).
fn status_op(status: &StatusEdit) -> Op {
    let value = status.value.as_str();
    match status.at {
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
        StatusAt::Annotations => Op::add(STATUS_PATH.to_owned(), &value),
    }
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
        image: config.image.as_str(),
        image_pull_policy: config.image_pull_policy.map(PullPolicy::as_str),
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
        cpu: config.init_resources.cpu.as_str(),
        memory: config.init_resources.memory.as_str(),
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

/// The mutation core, prepared once from a configuration: the parts of
/// every patch that depend only on the configuration (the volume, the
/// init container with and without resources, with and without the
/// binary, the app containers' mount) are rendered to JSON text when it
/// is built, not for every pod. It is immutable: the webhook's state and
/// `inject` build one and share it.
#[derive(Debug)]
pub struct Injector {
    config: InjectConfig,
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
    app_mount: Element,
}

impl Injector {
    /// Renders the configuration's parts of the patch.
    pub fn new(config: InjectConfig) -> Self {
        let init = |sizing, command: &[&'static str]| {
            Element::new(&init_container(&config, sizing, command))
        };
        Injector {
            volume: Element::new(&volume(config.volume_size_limit.as_str())),
            init_container: init(InitResources::RequestsEqualLimits, &INSTALL_COMMAND),
            init_container_without_resources: init(InitResources::Unset, &INSTALL_COMMAND),
            volume_with_binary: Element::new(&volume(BINARY_VOLUME_SIZE_LIMIT)),
            init_container_with_binary: init(
                InitResources::RequestsEqualLimits,
                &INSTALL_WITH_BINARY,
            ),
            init_container_with_binary_without_resources: init(
                InitResources::Unset,
                &INSTALL_WITH_BINARY,
            ),
            app_mount: Element::new(&APP_MOUNT),
            config,
        }
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &InjectConfig {
        &self.config
    }
}

impl Default for Injector {
    /// Prepared from [`InjectConfig::default`].
    fn default() -> Self {
        Injector::new(InjectConfig::default())
    }
}

/// Adds `element` to the array at `array`: at `position` when it exists,
/// as a new one-element array when it does not.
fn push_add(ops: &mut Vec<Op>, add: Add, array: &str, position: &str, element: &Element) {
    match add {
        Add::Nothing => {}
        Add::Into => ops.push(Op {
            op: "add",
            path: path(&[array, "/", position]),
            value: element.alone.clone(),
        }),
        Add::Create => ops.push(Op {
            op: "add",
            path: array.to_owned(),
            value: element.listed.clone(),
        }),
    }
}

fn container_ops<'w>(
    ops: &mut Vec<Op>,
    c: &'w ContainerWork,
    mount: &Element,
    entries: &mut EnvEntries<'w>,
) {
    let list = match c.list {
        List::Containers => "containers",
        List::InitContainers => "initContainers",
    };
    let mut digits = Digits::default();
    let index = decimal(c.index, &mut digits);
    let base = ["/spec/", list, "/", index];
    let at = |tail: &[&str]| joined(&base, tail);
    push_add(ops, c.mount, &at(&["/volumeMounts"]), "-", mount);
    if let Some(prefix) = &c.command_prefix {
        // Inserted before the command's own elements, which stay untouched.
        for (i, element) in prefix.iter().enumerate() {
            let mut digits = Digits::default();
            ops.push(Op::add(
                at(&["/command/", decimal(i, &mut digits)]),
                element,
            ));
        }
    }
    let mut new_vars = Vec::new();
    for edit in &c.env {
        match edit {
            EnvEdit::Add { name, value } => new_vars.push(EnvVar { name, value }),
            EnvEdit::SetValue { index, value } => {
                let mut digits = Digits::default();
                let i = decimal(*index, &mut digits);
                ops.push(Op::add(at(&["/env/", i, "/value"]), value));
            }
        }
    }
    if new_vars.is_empty() {
        return;
    }
    if c.env_present {
        for var in &new_vars {
            ops.push(Op {
                op: "add",
                path: at(&["/env/-"]),
                value: entries.render(var),
            });
        }
    } else {
        ops.push(Op::add(at(&["/env"]), &new_vars));
    }
}

/// The `env` entries already rendered for this pod: containers usually
/// get the same ones (`BACKLOG`, `LD_PRELOAD`), which are then copied
/// instead of being serialised again.
#[derive(Default)]
struct EnvEntries<'w> {
    rendered: Vec<(EnvVar<'w>, Box<RawValue>)>,
}

impl<'w> EnvEntries<'w> {
    fn render(&mut self, var: &EnvVar<'w>) -> Box<RawValue> {
        if let Some((_, json)) = self.rendered.iter().find(|(v, _)| v == var) {
            return json.clone();
        }
        let json = raw(var);
        self.rendered.push((*var, json.clone()));
        json
    }
}

/// A JSON Pointer from its pieces, in one allocation of its size (paths
/// are built for every container of every review: no `format!`).
fn path(pieces: &[&str]) -> String {
    joined(pieces, &[])
}

/// `head` and `tail` joined as one path.
fn joined(head: &[&str], tail: &[&str]) -> String {
    let len = head.iter().chain(tail).map(|p| p.len()).sum();
    let mut out = String::with_capacity(len);
    for piece in head.iter().chain(tail) {
        out.push_str(piece);
    }
    out
}

/// Room for the decimal digits of any `usize`.
type Digits = [u8; 20];

/// `n` in decimal, written into `digits`.
fn decimal(mut n: usize, digits: &mut Digits) -> &str {
    let mut at = digits.len();
    loop {
        at -= 1;
        // A single digit: always ASCII.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[at..]).unwrap_or_default()
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
    InitContainer {
        name: INIT_CONTAINER_NAME,
        image: config.image.as_str(),
        image_pull_policy: config.image_pull_policy.map(PullPolicy::as_str),
        command,
        resources: resources(config, sizing),
        security_context: restricted(),
        volume_mounts: [Mount {
            name: VOLUME_NAME,
            mount_path: MOUNT_PATH,
            read_only: None,
        }],
        termination_message_policy: "FallbackToLogsOnError",
    }
}

/// Why operations could not be applied to a document.
#[derive(Debug, thiserror::Error)]
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
    #[error("JSON Patch value at {path} is not JSON")]
    Value {
        /// The path of the operation.
        path: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The path is not a JSON Pointer, does not lead to an existing
    /// parent, or the index is out of range.
    #[error("JSON Patch path {0} does not exist in the document")]
    NoSuchPath(String),
}

/// Applies `add` operations to a document (RFC 6902 semantics, by the
/// json-patch crate), as `inject` does with the operations [`mutate`]
/// returns. Nothing is changed when one of them fails.
pub fn apply(doc: &mut Value, ops: &[Op]) -> Result<(), ApplyError> {
    let patch = ops
        .iter()
        .map(Op::to_patch_operation)
        .collect::<Result<Vec<_>, _>>()?;
    json_patch::patch(doc, &patch).map_err(|err| {
        let path = ops
            .get(err.operation)
            .map_or_else(String::new, |op| op.path.clone());
        ApplyError::NoSuchPath(path)
    })
}

impl Op {
    /// The operation as the json-patch crate takes it.
    fn to_patch_operation(&self) -> Result<json_patch::PatchOperation, ApplyError> {
        if self.op != "add" {
            return Err(ApplyError::Unsupported {
                op: self.op.to_owned(),
                path: self.path.clone(),
            });
        }
        let value = self.value().map_err(|source| ApplyError::Value {
            path: self.path.clone(),
            source,
        })?;
        let path = json_patch::jsonptr::PointerBuf::parse(self.path.as_str())
            .map_err(|_| ApplyError::NoSuchPath(self.path.clone()))?;
        Ok(json_patch::PatchOperation::Add(json_patch::AddOperation {
            path,
            value,
        }))
    }
}

#[cfg(test)]
mod tests;
