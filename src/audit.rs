//! `forcebacklog audit`: which pods asked for the shim and got it, were
//! skipped (and why), or were **missed**: admitted while the webhook could
//! not be reached (`failurePolicy: Ignore`), so no `forcebacklog/status`.
//!
//! A pod asks for forcebacklog when the webhook would target it: a
//! `forcebacklog/value` annotation, `forcebacklog/inject: "true"`, or its
//! namespace labelled `forcebacklog/inject=enabled` (and the pod not opted
//! out with `forcebacklog/inject: "false"`). A namespace labelled
//! `forcebacklog/inject=disabled` is never watched, so its pods never ask.
//! The rule is [`crate::annotations::targeting`], the webhook's own.
//!
//! Pods are grouped by the object that owns them, followed through the
//! ownerReferences a controller sets (Pod → ReplicaSet → Deployment,
//! Pod → Job → CronJob, StatefulSet, DaemonSet), and each owner with a
//! missed pod gets the command that recreates its pods (see `fix`).
//! Pods that have finished (Succeeded, Failed) or are being deleted are
//! left out: they will not run again.
//!
//! Read-only, and metadata only: it lists pods and namespaces and gets
//! replicasets and jobs (`PartialObjectMetadata`, never specs). The
//! cluster configuration follows kubectl's rules ([`kube::Config::infer`]:
//! `KUBECONFIG` or `~/.kube/config`, else in-cluster), or the
//! `--kubeconfig`/`--context` given.
//!
//! Everything that decides (`asks`, `classify`, `owner_through`,
//! `group`, `fix`) is a pure function over k8s-openapi objects; the
//! client only fetches (`namespace_opt_ins`, `asking_pods`, then
//! `pod_reports` with one `lookup` per ReplicaSet or Job).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::annotations::{self, Annotations, Defaults, Raw, Targeting};

/// The namespace label that opts every pod in (`enabled`) or none (`disabled`).
pub(crate) const NAMESPACE_LABEL: &str = "forcebacklog/inject";
/// What audit needs, for error messages and docs.
pub(crate) const RBAC_NEEDED: &str =
    "list pods and namespaces, get replicasets (apps) and jobs (batch); see docs/install.md";
/// Pods per list request.
const PAGE: u32 = 500;

/// What went wrong while auditing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable cluster configuration (kubeconfig unreadable, context
    /// unknown, and not running in a cluster).
    #[error("no cluster configuration: {0}")]
    Config(String),
    /// The client could not be built from the configuration (TLS, proxy…).
    #[error("cannot build the Kubernetes client: {0}")]
    Client(String),
    /// The API server refused or failed a request.
    #[error("{what}: {reason}")]
    Request {
        /// What was asked, e.g. `listing pods in namespace shop`.
        what: String,
        /// The API server's answer, or why there was none.
        reason: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// The report could not be written to stdout.
    #[error("cannot write the report")]
    Output(#[source] io::Error),
}

/// Which pods to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The namespace of the kubeconfig context (`default` when it sets none).
    ContextNamespace,
    /// This namespace.
    Namespace(String),
    /// Every namespace.
    All,
}

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table, then the fixes.
    Table,
    /// One JSON object (see `Report`).
    Json,
}

/// What `forcebacklog audit` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which pods.
    pub scope: Scope,
    /// A kubeconfig file instead of `KUBECONFIG`/`~/.kube/config`/in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig instead of its current one.
    pub context: Option<String>,
    /// The format.
    pub output: Output,
}

/// How a namespace's `forcebacklog/inject` label opts its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum NamespaceOptIn {
    /// No label (or another value): only annotated pods ask.
    #[default]
    None,
    /// `enabled`: every pod asks unless it opts out.
    Enabled,
    /// `disabled`: the webhook never sees its pods.
    Disabled,
}

impl NamespaceOptIn {
    /// Reads a namespace's labels.
    pub(crate) fn of(namespace: &ObjectMeta) -> NamespaceOptIn {
        match namespace
            .labels
            .as_ref()
            .and_then(|l| l.get(NAMESPACE_LABEL))
            .map(String::as_str)
        {
            Some("enabled") => NamespaceOptIn::Enabled,
            Some("disabled") => NamespaceOptIn::Disabled,
            _ => NamespaceOptIn::None,
        }
    }
}

/// The `forcebacklog/*` annotations of an object.
fn our_annotations(meta: &ObjectMeta) -> Annotations<'_> {
    let mut found = Annotations::default();
    for (key, value) in meta.annotations.iter().flatten() {
        if key == annotations::MIRROR {
            found.mirror = true;
        } else {
            found.insert(key, Raw::Str(Cow::Borrowed(value)));
        }
    }
    found
}

/// True when the webhook would target this pod, by the webhook's own rule.
/// A pod whose annotations are invalid asks too: the webhook answers it
/// with `skipped: <reason>`.
pub(crate) fn asks(pod: &ObjectMeta, namespace: NamespaceOptIn) -> bool {
    if namespace == NamespaceOptIn::Disabled {
        return false;
    }
    let defaults = Defaults {
        backlog: annotations::DEFAULT_SOMAXCONN,
        implicit: namespace == NamespaceOptIn::Enabled,
    };
    match annotations::targeting(&our_annotations(pod), defaults) {
        Ok(Targeting::Targeted(_)) | Err(_) => true,
        Ok(Targeting::NotTargeted | Targeting::OptedOut) => false,
    }
}

/// What happened to a pod that asks for forcebacklog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// `forcebacklog/status: injected`.
    Injected,
    /// `forcebacklog/status: skipped: <reason>`: the webhook saw it and left it alone.
    Skipped(String),
    /// No `forcebacklog/status`: the webhook never saw it.
    Missed,
}

impl State {
    /// `injected`, `skipped` or `missed`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            State::Injected => "injected",
            State::Skipped(_) => "skipped",
            State::Missed => "missed",
        }
    }

    /// The reason of a skipped pod.
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            State::Skipped(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Reads what the webhook wrote on a pod that asks for forcebacklog.
pub(crate) fn classify(pod: &ObjectMeta) -> State {
    let found = our_annotations(pod);
    match found.status_str() {
        Some(annotations::STATUS_INJECTED) => State::Injected,
        Some(status) => {
            let reason = status.strip_prefix("skipped:").unwrap_or(status).trim();
            State::Skipped(reason.to_owned())
        }
        // The webhook never injects the mirror pod of a static pod: the
        // kubelet runs it from a file on the node, whatever the API says.
        None if found.mirror => {
            State::Skipped("mirror pod of a static pod (never injected)".to_owned())
        }
        None => State::Missed,
    }
}

/// The object a pod's pods are recreated through: `Deployment/web`,
/// `Pod/debug` for a pod nothing owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) struct Owner {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `CronJob`,
    /// `Job`, `Pod`, or another controller's kind.
    pub kind: String,
    /// Its name.
    pub name: String,
}

impl Owner {
    fn of(reference: &OwnerReference) -> Owner {
        Owner {
            kind: reference.kind.clone(),
            name: reference.name.clone(),
        }
    }
}

/// The controlling ownerReference (`controller: true`), else the first.
pub(crate) fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

/// Which kind of intermediate owner is looked up to find the one above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intermediate {
    /// A ReplicaSet, perhaps a Deployment's.
    ReplicaSet,
    /// A Job, perhaps a CronJob's.
    Job,
}

impl Intermediate {
    /// The intermediate kind a pod's owner is, if any.
    pub(crate) fn of(reference: &OwnerReference) -> Option<Intermediate> {
        let group = reference.api_version.split('/').next().unwrap_or_default();
        match (reference.kind.as_str(), group) {
            ("ReplicaSet", "apps") => Some(Intermediate::ReplicaSet),
            ("Job", "batch") => Some(Intermediate::Job),
            _ => None,
        }
    }

    /// The kind that owns it when a controller made it.
    fn parent_kind(self) -> &'static str {
        match self {
            Intermediate::ReplicaSet => "Deployment",
            Intermediate::Job => "CronJob",
        }
    }
}

/// The owner of a pod whose controller is `first`, given the metadata of
/// that controller when it was looked up (a ReplicaSet or a Job): its own
/// Deployment or CronJob when it has one, else `first` itself. A pod with
/// no owner is its own (`Pod/NAME`).
pub(crate) fn owner_through(
    pod: &ObjectMeta,
    first: Option<&OwnerReference>,
    parent: Option<&ObjectMeta>,
) -> Owner {
    let Some(first) = first else {
        return Owner {
            kind: "Pod".to_owned(),
            name: pod.name.clone().unwrap_or_default(),
        };
    };
    if let (Some(kind), Some(parent)) = (Intermediate::of(first), parent)
        && let Some(above) = controller(parent).filter(|r| r.kind == kind.parent_kind())
    {
        return Owner::of(above);
    }
    Owner::of(first)
}

/// One pod that asks for forcebacklog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodReport {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What its pods are recreated through.
    pub owner: Owner,
    /// What happened to it.
    pub state: State,
}

/// The pods of one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerReport {
    /// The owner's namespace.
    pub namespace: String,
    /// The owner.
    pub owner: Owner,
    /// Its pods, by name.
    pub pods: Vec<PodReport>,
    /// The command that fixes its missed pods, when it has any.
    pub fix: Option<String>,
}

impl OwnerReport {
    /// Its pods in this state.
    pub(crate) fn count(&self, state: &str) -> usize {
        self.pods
            .iter()
            .filter(|p| p.state.as_str() == state)
            .count()
    }
}

/// Groups pods by (namespace, owner), in that order, with the fix of
/// every owner that has a missed pod.
pub(crate) fn group(mut pods: Vec<PodReport>) -> Vec<OwnerReport> {
    pods.sort_by(|a, b| (&a.namespace, &a.owner, &a.name).cmp(&(&b.namespace, &b.owner, &b.name)));
    let mut owners: Vec<OwnerReport> = Vec::new();
    for pod in pods {
        match owners.last_mut() {
            Some(last) if last.namespace == pod.namespace && last.owner == pod.owner => {
                last.pods.push(pod);
            }
            _ => owners.push(OwnerReport {
                namespace: pod.namespace.clone(),
                owner: pod.owner.clone(),
                pods: vec![pod],
                fix: None,
            }),
        }
    }
    for report in &mut owners {
        let missed: Vec<&str> = report
            .pods
            .iter()
            .filter(|p| p.state == State::Missed)
            .map(|p| p.name.as_str())
            .collect();
        if !missed.is_empty() {
            report.fix = Some(fix(&report.namespace, &report.owner, &missed));
        }
    }
    owners
}

/// The command that recreates an owner's missed pods through the webhook.
pub(crate) fn fix(namespace: &str, owner: &Owner, missed: &[&str]) -> String {
    let name = &owner.name;
    match owner.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" => format!(
            "kubectl -n {namespace} rollout restart {}/{name}",
            owner.kind.to_lowercase()
        ),
        "CronJob" => format!(
            "the next run of cronjob/{name} is injected; to run it now: kubectl -n {namespace} create job --from=cronjob/{name} {name}-rerun"
        ),
        "Job" => format!(
            "delete and recreate job/{name} from its manifest: kubectl -n {namespace} delete job {name} && kubectl apply -f JOB.yaml"
        ),
        "Pod" => format!(
            "delete and recreate pod/{name} from its manifest: kubectl -n {namespace} delete pod {name} && kubectl apply -f POD.yaml"
        ),
        // A ReplicaSet of its own, a ReplicationController, an operator's
        // kind: it replaces deleted pods.
        kind => format!(
            "kubectl -n {namespace} delete pod {} ({}/{name} recreates them)",
            missed.join(" "),
            kind.to_lowercase()
        ),
    }
}

/// One pod in `--output json`.
#[derive(Serialize)]
struct PodJson<'a> {
    namespace: &'a str,
    name: &'a str,
    owner: &'a Owner,
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl<'a> PodJson<'a> {
    fn of(p: &'a PodReport) -> Self {
        PodJson {
            namespace: &p.namespace,
            name: &p.name,
            owner: &p.owner,
            state: p.state.as_str(),
            reason: p.state.reason(),
        }
    }
}

/// One owner in `--output json`: its counts, missed pods and fix.
#[derive(Serialize)]
struct OwnerJson<'a> {
    namespace: &'a str,
    kind: &'a str,
    name: &'a str,
    injected: usize,
    skipped: usize,
    missed: usize,
    missed_pods: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<&'a str>,
}

impl<'a> OwnerJson<'a> {
    fn of(o: &'a OwnerReport) -> Self {
        OwnerJson {
            namespace: &o.namespace,
            kind: &o.owner.kind,
            name: &o.owner.name,
            injected: o.count("injected"),
            skipped: o.count("skipped"),
            missed: o.count("missed"),
            missed_pods: o
                .pods
                .iter()
                .filter(|p| p.state == State::Missed)
                .map(|p| p.name.as_str())
                .collect(),
            fix: o.fix.as_deref(),
        }
    }
}

/// The audit: every pod that asks, grouped by owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Report {
    /// What was audited: a namespace, or every namespace.
    pub scope: String,
    /// By namespace and owner.
    pub owners: Vec<OwnerReport>,
}

impl Report {
    /// Pods in this state.
    pub(crate) fn count(&self, state: &str) -> usize {
        self.owners.iter().map(|o| o.count(state)).sum()
    }

    /// True when a pod was missed.
    pub(crate) fn has_missed(&self) -> bool {
        self.count("missed") > 0
    }

    /// The report as `--output json` prints it.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let pods: Vec<PodJson<'_>> = self
            .owners
            .iter()
            .flat_map(|o| &o.pods)
            .map(PodJson::of)
            .collect();
        let owners: Vec<OwnerJson<'_>> = self.owners.iter().map(OwnerJson::of).collect();
        serde_json::json!({
            "scope": self.scope,
            "pods": pods,
            "owners": owners,
            "summary": {
                "injected": self.count("injected"),
                "skipped": self.count("skipped"),
                "missed": self.count("missed"),
            },
        })
    }

    /// The report as `--output table` prints it: a row per pod, a
    /// summary line, then the fix of each owner with missed pods.
    pub(crate) fn to_table(&self) -> String {
        let mut out = String::new();
        let pods: Vec<&PodReport> = self.owners.iter().flat_map(|o| &o.pods).collect();
        if pods.is_empty() {
            let _ = writeln!(out, "no pods ask for forcebacklog in {}", self.scope);
            return out;
        }
        let owner_of = |p: &PodReport| format!("{}/{}", p.owner.kind.to_lowercase(), p.owner.name);
        let width = |header: &str, f: &dyn Fn(&PodReport) -> usize| {
            pods.iter()
                .map(|p| f(p))
                .max()
                .unwrap_or(0)
                .max(header.len())
        };
        let w_ns = width("NAMESPACE", &|p| p.namespace.len());
        let w_owner = width("OWNER", &|p| owner_of(p).len());
        let w_pod = width("POD", &|p| p.name.len());
        let w_state = "INJECTED".len();
        let _ = writeln!(
            out,
            "{:w_ns$}  {:w_owner$}  {:w_pod$}  {:w_state$}  REASON",
            "NAMESPACE", "OWNER", "POD", "STATE"
        );
        for p in &pods {
            let line = format!(
                "{:w_ns$}  {:w_owner$}  {:w_pod$}  {:w_state$}  {}",
                p.namespace,
                owner_of(p),
                p.name,
                p.state.as_str(),
                p.state.reason().unwrap_or_default()
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(
            out,
            "\n{} pods ask for forcebacklog in {}: {} injected, {} skipped, {} missed",
            pods.len(),
            self.scope,
            self.count("injected"),
            self.count("skipped"),
            self.count("missed")
        );
        let fixes: Vec<&str> = self
            .owners
            .iter()
            .filter_map(|o| o.fix.as_deref())
            .collect();
        if !fixes.is_empty() {
            let _ = writeln!(
                out,
                "\nMissed pods were admitted without the webhook; recreate them while it runs:"
            );
            for f in fixes {
                let _ = writeln!(out, "  {f}");
            }
        }
        out
    }
}

/// Runs `forcebacklog audit`: prints the report; true when a pod was missed.
pub fn run(options: &Options) -> Result<bool, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let report = runtime.block_on(audit(options))?;
    let text = match options.output {
        Output::Table => report.to_table(),
        Output::Json => format!("{:#}\n", report.to_json()),
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Output)?;
    Ok(report.has_missed())
}

/// The error and its causes on one line, without kube's repetitions.
fn chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// A failed request as one line: the API server's own message (which
/// names the user, the verb and the resource when forbidden), and what
/// audit needs when it was refused.
fn request_error(what: String, err: &kube::Error) -> Error {
    let reason = match err {
        kube::Error::Api(status) => {
            let mut reason = format!("{} ({} {})", status.message, status.code, status.reason);
            if status.code == 401 || status.code == 403 {
                let _ = write!(reason, "; audit needs to {RBAC_NEEDED}");
            }
            reason
        }
        other => chain(other),
    };
    Error::Request { what, reason }
}

/// The client, and the scope with the context's namespace filled in.
async fn client(options: &Options) -> Result<(kube::Client, Scope), Error> {
    let kube_options = kube::config::KubeConfigOptions {
        context: options.context.clone(),
        ..Default::default()
    };
    let config = match (&options.kubeconfig, &options.context) {
        (Some(path), _) => {
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(|e| Error::Config(chain(&e)))?;
            kube::Config::from_custom_kubeconfig(file, &kube_options)
                .await
                .map_err(|e| Error::Config(chain(&e)))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|e| Error::Config(chain(&e)))?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| Error::Config(chain(&e)))?,
    };
    let namespace = config.default_namespace.clone();
    let scope = match &options.scope {
        Scope::ContextNamespace => Scope::Namespace(namespace),
        other => other.clone(),
    };
    let client = kube::Client::try_from(config).map_err(|e| Error::Client(chain(&e)))?;
    Ok((client, scope))
}

/// Lists the pods that ask in the scope, and reports each under its owner.
async fn audit(options: &Options) -> Result<Report, Error> {
    let (client, scope) = client(options).await?;
    let scoped = Scoped::of(&client, &scope);
    let opt_in = namespace_opt_ins(&client, &scoped.namespaces).await?;
    let asking = asking_pods(&scoped, &opt_in).await?;
    let pods = pod_reports(&client, asking).await?;
    Ok(Report {
        scope: scoped.text,
        owners: group(pods),
    })
}

/// What an audit's scope lists: its pods, its labelled namespaces, and how
/// messages name it.
struct Scoped {
    /// The pods of the scope.
    pods: Api<Pod>,
    /// The list of the scope's labelled namespaces.
    namespaces: ListParams,
    /// `namespace NAME` or `all namespaces`.
    text: String,
}

impl Scoped {
    /// The lists of one namespace, or of every namespace.
    fn of(client: &kube::Client, scope: &Scope) -> Scoped {
        match scope {
            Scope::Namespace(ns) => Scoped {
                pods: Api::namespaced(client.clone(), ns),
                namespaces: ListParams::default()
                    .labels(NAMESPACE_LABEL)
                    .fields(&format!("metadata.name={ns}")),
                text: format!("namespace {ns}"),
            },
            Scope::All | Scope::ContextNamespace => Scoped {
                pods: Api::all(client.clone()),
                namespaces: ListParams::default().labels(NAMESPACE_LABEL),
                text: "all namespaces".to_owned(),
            },
        }
    }
}

/// The opt-in of each labelled namespace (only labelled namespaces matter;
/// the others opt nothing in or out).
async fn namespace_opt_ins(
    client: &kube::Client,
    params: &ListParams,
) -> Result<HashMap<String, NamespaceOptIn>, Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labelled = namespaces
        .list_metadata(params)
        .await
        .map_err(|e| request_error("listing namespaces".to_owned(), &e))?;
    Ok(labelled
        .items
        .iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, NamespaceOptIn::of(&n.metadata))))
        .collect())
}

/// The metadata of every running pod of the scope that asks for the shim,
/// read a page at a time.
async fn asking_pods(
    scoped: &Scoped,
    opt_in: &HashMap<String, NamespaceOptIn>,
) -> Result<Vec<ObjectMeta>, Error> {
    let mut asking: Vec<ObjectMeta> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // Finished pods will not run again; the API server leaves them out.
        let mut params = ListParams::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed")
            .limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = scoped
            .pods
            .list_metadata(&params)
            .await
            .map_err(|e| request_error(format!("listing pods in {}", scoped.text), &e))?;
        for pod in page.items {
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            let namespace = opt_in.get(ns).copied().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_none() && asks(&pod.metadata, namespace) {
                asking.push(pod.metadata);
            }
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(asking);
        }
    }
}

/// Each pod's owner (followed through the ReplicaSet or Job that controls
/// it) and state. One lookup per intermediate owner, however many pods it
/// has.
async fn pod_reports(
    client: &kube::Client,
    asking: Vec<ObjectMeta>,
) -> Result<Vec<PodReport>, Error> {
    let mut parents: HashMap<(String, String), Option<ObjectMeta>> = HashMap::new();
    let mut pods = Vec::with_capacity(asking.len());
    for pod in asking {
        let namespace = pod.namespace.clone().unwrap_or_default();
        let first = controller(&pod);
        let parent = match first.and_then(|r| Intermediate::of(r).map(|k| (k, r))) {
            Some((kind, reference)) => {
                let key = (namespace.clone(), format!("{kind:?}/{}", reference.name));
                if !parents.contains_key(&key) {
                    let found = lookup(client, &namespace, kind, &reference.name).await?;
                    parents.insert(key.clone(), found);
                }
                parents.get(&key).and_then(Option::as_ref)
            }
            None => None,
        };
        pods.push(PodReport {
            owner: owner_through(&pod, first, parent),
            state: classify(&pod),
            name: pod.name.clone().unwrap_or_default(),
            namespace,
        });
    }
    Ok(pods)
}

/// The metadata of a ReplicaSet or Job; `None` when it is gone.
async fn lookup(
    client: &kube::Client,
    namespace: &str,
    kind: Intermediate,
    name: &str,
) -> Result<Option<ObjectMeta>, Error> {
    let what = |resource: &str| format!("getting {resource} {name} in namespace {namespace}");
    let found = match kind {
        Intermediate::ReplicaSet => Api::<ReplicaSet>::namespaced(client.clone(), namespace)
            .get_metadata_opt(name)
            .await
            .map_err(|e| request_error(what("replicaset"), &e))?
            .map(|m| m.metadata),
        Intermediate::Job => Api::<Job>::namespaced(client.clone(), namespace)
            .get_metadata_opt(name)
            .await
            .map_err(|e| request_error(what("job"), &e))?
            .map(|m| m.metadata),
    };
    Ok(found)
}

#[cfg(test)]
mod tests;
