//! Pod JSON + opt-in → what to inject where, or a skip reason.
//!
//! Every injection rule lives here, each in a function named after it
//! (`skip_mirror_pod`, `skip_windows`, `select`, `skip_read_only_parent`,
//! `init_container_to_add`, `init_resources`, `keep_user_value`,
//! `skip_without_command`, `wrap_command`, …): which
//! containers are selected, how an existing `LD_PRELOAD` or `BACKLOG` is
//! treated, which pods are skipped and why, what counts as already injected. [`crate::patch`] only renders the
//! resulting [`Plan`] as JSON Patch operations.
//!
//! The input is a [`PodView`]: the few fields of a Pod (or of a pod
//! template's `{metadata, spec}`) the rules look at, borrowed from the raw
//! JSON. It deserialises from request bytes (the webhook) or from a
//! `serde_json::Value` (`inject`), and ignores every other field, so the
//! rules never depend on fields they do not know.

use crate::annotations::{
    self, AnnotationError, Annotations, Borrowed, Containers, DEFAULT_SOMAXCONN, Defaults, Method,
    Mode, Raw, Settings, Targeting,
};
use crate::config::InjectConfig;
use crate::env;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

/// The injected emptyDir volume.
pub const VOLUME_NAME: &str = "forcebacklog-shim";
/// Where the volume is mounted (read-only in app containers).
pub const MOUNT_PATH: &str = "/opt/forcebacklog";
/// The init container that copies the shim into the volume.
pub const INIT_CONTAINER_NAME: &str = "forcebacklog-install";
/// The command of our init container (how ours is told from a foreign
/// init container of the same name, together with its volume mount).
pub const INSTALL_COMMAND: [&str; 3] = ["/forcebacklog", "install-shim", MOUNT_PATH];
/// The flag of [`INSTALL_COMMAND`] that also copies the whole binary into
/// the volume (`forcebacklog/method: supervise`); it goes last, so an
/// init container without it gets it by one appended element.
pub const INSTALL_BINARY_FLAG: &str = "--with-binary";
/// The whole binary's path inside app containers
/// (`forcebacklog/method: supervise` runs the command under it).
pub const BINARY_PATH: &str = "/opt/forcebacklog/forcebacklog";
/// `sizeLimit` of the volume when it also holds the whole binary (about
/// 14 MB) instead of the configured one (sized for the shim alone).
pub const BINARY_VOLUME_SIZE_LIMIT: &str = "32Mi";
/// The shim's path inside app containers: the `LD_PRELOAD` entry.
pub const SHIM_PATH: &str = "/opt/forcebacklog/libforcebacklog.so";
/// The name of the metrics sidecar (`forcebacklog/metrics`).
pub const METRICS_CONTAINER_NAME: &str = "forcebacklog-metrics";
/// The command of the metrics sidecar, before its address.
pub const METRICS_COMMAND: [&str; 3] = ["/forcebacklog", "sockets", "--serve"];

/// Where the pod template of an object of this API group and kind is, as
/// a JSON Pointer (`""`: the object is a Pod), or `None` for kinds without one.
/// The webhook's `/validate` and `inject` both use this list.
pub fn pod_template_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Pod") => Some(""),
        ("", "PodTemplate") => Some("/template"),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some("/spec/template"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The fields of a Pod (or pod template) the rules need, borrowed from the raw JSON.
#[derive(Debug, Clone, Default)]
pub struct PodView<'a> {
    /// `metadata` (`None` when absent or null).
    pub metadata: Option<MetaView<'a>>,
    /// `spec` (`None` when absent or null).
    pub spec: Option<SpecView<'a>>,
}

/// `metadata`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct MetaView<'a> {
    /// `metadata.annotations`, only the `forcebacklog/*` keys.
    #[serde(borrow, default)]
    pub annotations: Option<Annotations<'a>>,
    /// `metadata.ownerReferences`: whether it names an owner.
    #[serde(default, rename = "ownerReferences")]
    pub owner_references: Owners,
}

/// `metadata.ownerReferences` read for the one thing asked of it: true
/// when it is a list with at least one entry (entries not inspected),
/// false for anything else (absent, `null`, `[]`, not a list). An object
/// with an owner was made by a controller from a template that was judged
/// already. The one ownerReferences check, for Pods and workloads alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owners(pub bool);

impl<'de> Deserialize<'de> for Owners {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NonEmptyList;
        impl<'de> Visitor<'de> for NonEmptyList {
            type Value = Owners;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Owners, A::Error> {
                let any = seq.next_element::<IgnoredAny>()?.is_some();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Owners(any))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Owners, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Owners(false))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Owners, E> {
                Ok(Owners(false))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Owners, E> {
                Ok(Owners(false))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Owners, E> {
                Ok(Owners(false))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Owners, E> {
                Ok(Owners(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Owners, E> {
                Ok(Owners(false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Owners, E> {
                Ok(Owners(false))
            }
        }
        d.deserialize_any(NonEmptyList)
    }
}

/// `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct SpecView<'a> {
    /// `spec.containers`.
    #[serde(borrow, default)]
    pub containers: Option<Vec<ContainerView<'a>>>,
    /// `spec.initContainers`.
    #[serde(borrow, default, rename = "initContainers")]
    pub init_containers: Option<Vec<ContainerView<'a>>>,
    /// `spec.volumes`.
    #[serde(borrow, default)]
    pub volumes: Option<Vec<VolumeView<'a>>>,
    /// `spec.os`.
    #[serde(borrow, default)]
    pub os: Option<OsView<'a>>,
    /// `spec.nodeSelector` (only `kubernetes.io/os`).
    #[serde(borrow, default, rename = "nodeSelector")]
    pub node_selector: Option<NodeSelectorView<'a>>,
    /// `spec.securityContext` (only `sysctls`).
    #[serde(borrow, default, rename = "securityContext")]
    pub security_context: Option<PodSecurityView<'a>>,
    /// `spec.affinity` (only the required node affinity).
    #[serde(borrow, default)]
    pub affinity: Option<AffinityView<'a>>,
    /// `spec.imagePullSecrets`.
    #[serde(borrow, default, rename = "imagePullSecrets")]
    pub image_pull_secrets: Option<Vec<NameView<'a>>>,
    /// `spec.resources` (pod-level resources).
    #[serde(borrow, default)]
    pub resources: Option<ResourcesView<'a>>,
}

/// A container or init container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct ContainerView<'a> {
    /// `name`.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// `env`.
    #[serde(borrow, default)]
    pub env: Option<Vec<EnvView<'a>>>,
    /// `envFrom` (entries not inspected: the ConfigMaps and Secrets are not visible here).
    #[serde(default, rename = "envFrom")]
    pub env_from: Option<Vec<IgnoredAny>>,
    /// `volumeMounts`.
    #[serde(borrow, default, rename = "volumeMounts")]
    pub volume_mounts: Option<Vec<MountView<'a>>>,
    /// `restartPolicy` (`Always` makes an init container a native sidecar).
    #[serde(
        borrow,
        default,
        rename = "restartPolicy",
        deserialize_with = "optional_str"
    )]
    pub restart_policy: Option<Cow<'a, str>>,
    /// `command` (read leniently: compared with [`INSTALL_COMMAND`], and
    /// wrapped by `forcebacklog/method: supervise`).
    #[serde(borrow, default)]
    pub command: Option<Vec<Raw<'a>>>,
    /// `resources`.
    #[serde(borrow, default)]
    pub resources: Option<ResourcesView<'a>>,
    /// `ports` (only `containerPort`).
    #[serde(default)]
    pub ports: Option<Vec<PortView>>,
}

/// One `ports` entry of a container.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PortView {
    /// `containerPort` (anything but a number is kept as `None`).
    #[serde(default, rename = "containerPort", deserialize_with = "lenient_port")]
    pub container_port: Option<u64>,
}

fn lenient_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u64),
        Other(IgnoredAny),
    }
    Ok(match Port::deserialize(d)? {
        Port::Number(n) => Some(n),
        Port::Other(_) => None,
    })
}

/// One `env` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct EnvView<'a> {
    /// `name`.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// `value`.
    #[serde(borrow, default, deserialize_with = "optional_str")]
    pub value: Option<Cow<'a, str>>,
    /// `valueFrom` (contents not inspected).
    #[serde(default, rename = "valueFrom")]
    pub value_from: Option<IgnoredAny>,
}

/// One `volumeMounts` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct MountView<'a> {
    /// `name`.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// `mountPath`.
    #[serde(borrow, default, rename = "mountPath")]
    pub mount_path: Cow<'a, str>,
    /// `readOnly`.
    #[serde(default, rename = "readOnly")]
    pub read_only: Option<bool>,
}

/// One `volumes` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct VolumeView<'a> {
    /// `name`.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// `emptyDir` (contents not inspected).
    #[serde(default, rename = "emptyDir")]
    pub empty_dir: Option<IgnoredAny>,
    /// `configMap` (contents not inspected).
    #[serde(default, rename = "configMap")]
    pub config_map: Option<IgnoredAny>,
    /// `secret` (contents not inspected).
    #[serde(default)]
    pub secret: Option<IgnoredAny>,
    /// `projected` (contents not inspected).
    #[serde(default)]
    pub projected: Option<IgnoredAny>,
    /// `downwardAPI` (contents not inspected).
    #[serde(default, rename = "downwardAPI")]
    pub downward_api: Option<IgnoredAny>,
    /// `persistentVolumeClaim` (only `readOnly`).
    #[serde(default, rename = "persistentVolumeClaim")]
    pub persistent_volume_claim: Option<ClaimView>,
}

/// `persistentVolumeClaim` of a volume (nothing is patched inside it, so
/// it keeps serde's plain reader).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClaimView {
    /// `readOnly`.
    #[serde(default, rename = "readOnly")]
    pub read_only: Option<bool>,
}

/// `resources` of a container, or of the pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct ResourcesView<'a> {
    /// `requests` (only `cpu` and `memory`).
    #[serde(borrow, default)]
    pub requests: Option<QuantitiesView<'a>>,
    /// `limits` (only `cpu` and `memory`).
    #[serde(borrow, default)]
    pub limits: Option<QuantitiesView<'a>>,
}

/// The `cpu` and `memory` of requests or limits: strings, or numbers
/// in YAML (`cpu: 1`), read leniently.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct QuantitiesView<'a> {
    /// `cpu`.
    #[serde(borrow, default)]
    pub cpu: Option<Raw<'a>>,
    /// `memory`.
    #[serde(borrow, default)]
    pub memory: Option<Raw<'a>>,
}

/// An entry with a `name` (`imagePullSecrets`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct NameView<'a> {
    /// `name`.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
}

/// `spec.affinity`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct AffinityView<'a> {
    /// `nodeAffinity`.
    #[serde(borrow, default, rename = "nodeAffinity")]
    pub node_affinity: Option<NodeAffinityView<'a>>,
}

/// `spec.affinity.nodeAffinity`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct NodeAffinityView<'a> {
    /// `requiredDuringSchedulingIgnoredDuringExecution`.
    #[serde(
        borrow,
        default,
        rename = "requiredDuringSchedulingIgnoredDuringExecution"
    )]
    pub required: Option<RequiredNodesView<'a>>,
}

/// A required node selector: its terms are ORed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct RequiredNodesView<'a> {
    /// `nodeSelectorTerms`.
    #[serde(borrow, default, rename = "nodeSelectorTerms")]
    pub terms: Option<Vec<NodeTermView<'a>>>,
}

/// One node selector term: its expressions are ANDed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct NodeTermView<'a> {
    /// `matchExpressions`.
    #[serde(borrow, default, rename = "matchExpressions")]
    pub match_expressions: Option<Vec<RequirementView<'a>>>,
}

/// One node selector requirement.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct RequirementView<'a> {
    /// `key`.
    #[serde(borrow, default)]
    pub key: Cow<'a, str>,
    /// `operator`.
    #[serde(borrow, default)]
    pub operator: Cow<'a, str>,
    /// `values`.
    #[serde(borrow, default, deserialize_with = "optional_strs")]
    pub values: Option<Vec<Cow<'a, str>>>,
}

/// `spec.os`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct OsView<'a> {
    /// `spec.os.name`.
    #[serde(borrow, default, deserialize_with = "optional_str")]
    pub name: Option<Cow<'a, str>>,
}

/// `spec.nodeSelector`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct NodeSelectorView<'a> {
    /// `kubernetes.io/os`.
    #[serde(
        borrow,
        default,
        rename = "kubernetes.io/os",
        deserialize_with = "optional_str"
    )]
    pub os: Option<Cow<'a, str>>,
}

/// `spec.securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct PodSecurityView<'a> {
    /// `sysctls`.
    #[serde(borrow, default)]
    pub sysctls: Option<Vec<SysctlView<'a>>>,
}

/// One pod sysctl.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self")]
pub struct SysctlView<'a> {
    /// `name`.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// `value`.
    #[serde(borrow, default)]
    pub value: Cow<'a, str>,
}

/// An optional string, borrowed when it can be.
fn optional_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

/// An optional list of strings, each borrowed when it can be.
fn optional_strs<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Cow<'a, str>>>, D::Error> {
    let list = Option::<Vec<Borrowed<'a>>>::deserialize(d)?;
    Ok(list.map(|l| l.into_iter().map(|b| b.0).collect()))
}

// The views read JSON objects only. serde's derive also reads a struct
// from an array, field by field, so `"metadata": []` or `"containers":
// [["web"]]` would pass as a view, and the patch would then address
// `/metadata/annotations` or `/spec/containers/0/env` inside an array.
// The views below PodView derive their reader as an inherent function
// (`remote = "Self"`) that `objects_only!` calls for maps only; PodView
// (whose `PodView::deserialize` callers must get the checked reader) is
// read by hand. Anything else is an "invalid type: …, expected an object".
macro_rules! objects_only {
    ($($view:ident),* $(,)?) => {$(
        impl<'de: 'a, 'a> Deserialize<'de> for $view<'a> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Object<'a>(PhantomData<&'a ()>);
                impl<'de: 'a, 'a> Visitor<'de> for Object<'a> {
                    type Value = $view<'a>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                        $view::deserialize(MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(Object(PhantomData))
            }
        }
    )*};
}

objects_only!(
    MetaView,
    SpecView,
    ContainerView,
    EnvView,
    MountView,
    VolumeView,
    OsView,
    NodeSelectorView,
    PodSecurityView,
    SysctlView,
    ResourcesView,
    QuantitiesView,
    NameView,
    AffinityView,
    NodeAffinityView,
    RequiredNodesView,
    NodeTermView,
    RequirementView,
);

impl<'de: 'a, 'a> Deserialize<'de> for PodView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Object<'a> {
            type Value = PodView<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pod = PodView::default();
                let (mut metadata, mut spec) = (false, false);
                while let Some(Borrowed(key)) = map.next_key::<Borrowed<'de>>()? {
                    match key.as_ref() {
                        "metadata" if metadata => {
                            return Err(de::Error::duplicate_field("metadata"));
                        }
                        "metadata" => {
                            metadata = true;
                            pod.metadata = map.next_value()?;
                        }
                        "spec" if spec => return Err(de::Error::duplicate_field("spec")),
                        "spec" => {
                            spec = true;
                            pod.spec = map.next_value()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(pod)
            }
        }
        deserializer.deserialize_map(Object(PhantomData))
    }
}

impl<'a> PodView<'a> {
    /// The `forcebacklog/*` annotations (empty when there are none).
    pub fn annotations(&self) -> Option<&Annotations<'a>> {
        self.metadata.as_ref()?.annotations.as_ref()
    }

    /// True when `metadata.ownerReferences` has at least one entry
    /// ([`Owners`]).
    pub fn has_owner(&self) -> bool {
        self.metadata.as_ref().is_some_and(|m| m.owner_references.0)
    }

    fn containers(&self) -> &[ContainerView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.containers.as_deref())
            .unwrap_or_default()
    }

    fn init_containers(&self) -> &[ContainerView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
    }

    fn container(&self, (list, index): (List, usize)) -> &ContainerView<'a> {
        match list {
            List::Containers => &self.containers()[index],
            List::InitContainers => &self.init_containers()[index],
        }
    }

    fn volumes(&self) -> Option<&[VolumeView<'a>]> {
        self.spec.as_ref()?.volumes.as_deref()
    }

    /// The required node affinity's terms (empty when there is none).
    fn required_node_terms(&self) -> &[NodeTermView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| n.required.as_ref())
            .and_then(|r| r.terms.as_deref())
            .unwrap_or_default()
    }

    /// The pod sysctl `net.core.somaxconn`, when set to a number.
    fn somaxconn(&self) -> Option<u64> {
        self.spec
            .as_ref()?
            .security_context
            .as_ref()?
            .sysctls
            .as_ref()?
            .iter()
            .rev()
            .find(|s| s.name == "net.core.somaxconn")
            .and_then(|s| s.value.trim().parse().ok())
    }
}

impl ContainerView<'_> {
    fn is_native_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }

    fn mounts(&self) -> &[MountView<'_>] {
        self.volume_mounts.as_deref().unwrap_or_default()
    }

    /// Sets a non-zero CPU or memory request or limit (what makes a pod's
    /// QoS class other than BestEffort).
    fn sets_resources(&self) -> bool {
        self.resources.as_ref().is_some_and(ResourcesView::sets_any)
    }

    /// The last `env` entry with this name (Kubernetes uses the last one).
    fn env_var(&self, name: &str) -> Option<(usize, &EnvView<'_>)> {
        self.env
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .rev()
            .find(|(_, e)| e.name == name)
    }
}

impl ResourcesView<'_> {
    /// A non-zero `cpu` or `memory` in requests or limits, as Kubernetes
    /// counts them for the QoS class (zero quantities do not count).
    fn sets_any(&self) -> bool {
        [&self.requests, &self.limits]
            .into_iter()
            .flatten()
            .flat_map(|q| [&q.cpu, &q.memory])
            .flatten()
            .any(is_non_zero_quantity)
    }
}

/// A quantity other than zero. Anything that is not plainly zero (`0`,
/// `0.0`, `0Mi`, `0e3`, a YAML `0`) counts as set, so an unreadable value
/// keeps the init container's resources.
fn is_non_zero_quantity(raw: &Raw<'_>) -> bool {
    let text = match raw {
        Raw::Str(s) => s.as_ref(),
        Raw::NotString(s) if s == "null" => return false,
        Raw::NotString(s) => s.as_str(),
    };
    let unsigned = text.trim_start_matches(['+', '-']);
    let number = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or(unsigned, |end| &unsigned[..end]);
    !number.bytes().any(|b| b.is_ascii_digit())
        || number.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// Why a targeted pod was not injected. The [`SkipReason::label`] is a
/// small, fixed set (metrics); the `Display` text goes into
/// `forcebacklog/status: skipped: <text>` and the admission warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// An annotation value breaks the contract.
    Invalid(AnnotationError),
    /// A Windows pod (`spec.os.name`, nodeSelector `kubernetes.io/os`, or
    /// a required node affinity that rules Linux out).
    Windows,
    /// The mirror pod of a static pod (annotation
    /// `kubernetes.io/config.mirror`): the kubelet runs the manifest on its
    /// node, not this object.
    MirrorPod,
    /// A selected container takes `LD_PRELOAD` from `valueFrom`: merging is impossible.
    LdPreloadValueFrom {
        /// The container.
        container: String,
    },
    /// Our volume name or mount path is already used by something else.
    Collision(String),
    /// No container to inject.
    NoContainers,
    /// `forcebacklog/method: supervise` and a selected container without
    /// an explicit `command`: the webhook cannot read the image's
    /// entrypoint, so there is nothing to wrap.
    NoCommand {
        /// The container.
        container: String,
    },
}

impl SkipReason {
    /// The bounded reason class (a metric label); with `opted_out`, the
    /// labels of [`Verdict::skip_label`].
    pub fn label(&self) -> &'static str {
        match self {
            SkipReason::Invalid(_) => "invalid",
            SkipReason::Windows => "windows",
            SkipReason::MirrorPod => "mirror_pod",
            SkipReason::LdPreloadValueFrom { .. } => "ld_preload_value_from",
            SkipReason::Collision(_) => "collision",
            SkipReason::NoContainers => "no_containers",
            SkipReason::NoCommand { .. } => "no_command",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Invalid(err) => write!(f, "{err}"),
            SkipReason::Windows => f.write_str("Windows pod (the shim is a Linux library)"),
            SkipReason::MirrorPod => f.write_str(
                "mirror pod of a static pod (the kubelet runs the manifest on its node, not this object)",
            ),
            SkipReason::LdPreloadValueFrom { container } => write!(
                f,
                "container {container} takes LD_PRELOAD from valueFrom, which cannot be merged"
            ),
            SkipReason::Collision(what) => f.write_str(what),
            SkipReason::NoContainers => f.write_str("the pod has no container to inject"),
            SkipReason::NoCommand { container } => write!(
                f,
                "container {container} has no command: forcebacklog/method \"supervise\" wraps the container's command, and the image's entrypoint is not visible to forcebacklog; set command (the image's entrypoint) in the container, or leave the container out with forcebacklog/containers"
            ),
        }
    }
}

/// The decision for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing asks for the shim.
    NotTargeted,
    /// `forcebacklog/inject: "false"`.
    OptedOut,
    /// Targeted, and everything is already in place: no second injection.
    AlreadyInjected,
    /// Targeted, and the [`Work`] adds what is missing.
    Inject,
    /// Targeted but skipped.
    Skip(SkipReason),
}

impl Verdict {
    /// The label of a skipped pod (the `reason` of
    /// `forcebacklog_skips_total`): `opted_out`, or [`SkipReason::label`];
    /// `None` when the pod was not skipped. The one list of skip labels.
    pub fn skip_label(&self) -> Option<&'static str> {
        match self {
            Verdict::OptedOut => Some("opted_out"),
            Verdict::Skip(reason) => Some(reason.label()),
            Verdict::NotTargeted | Verdict::AlreadyInjected | Verdict::Inject => None,
        }
    }
}

/// How to add an element to an array that may be missing (absent or null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Add {
    /// Already there: nothing to add.
    Nothing,
    /// The array exists: add the element (appended; the init container goes first).
    Into,
    /// The array is missing: create it with the element.
    Create,
}

impl Add {
    fn into_or_create(array_present: bool) -> Self {
        if array_present {
            Add::Into
        } else {
            Add::Create
        }
    }
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// `spec.containers`.
    Containers,
    /// `spec.initContainers` (native sidecars).
    InitContainers,
}

/// One change to a container's `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvEdit {
    /// Add a variable.
    Add {
        /// Its name.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// Set (replace) the `value` of the existing entry at `index` (the
    /// merged `LD_PRELOAD`, the shim first).
    SetValue {
        /// Index in the container's `env`.
        index: usize,
        /// The new value.
        value: String,
    },
}

/// What one selected container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerWork {
    /// The list the container is in.
    pub list: List,
    /// Its index in that list, in the original pod.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// The read-only mount of the volume.
    pub mount: Add,
    /// True when `env` exists (appends), false when it must be created.
    pub env_present: bool,
    /// The env changes, in order.
    pub env: Vec<EnvEdit>,
    /// `forcebacklog/method: supervise`: the elements inserted before the
    /// container's own `command` (`/opt/forcebacklog/forcebacklog run …
    /// --`), whose elements stay as they are.
    pub command_prefix: Option<Vec<String>>,
}

impl ContainerWork {
    fn is_empty(&self) -> bool {
        self.mount == Add::Nothing && self.env.is_empty() && self.command_prefix.is_none()
    }
}

/// How the whole binary gets into the volume (`forcebacklog/method: supervise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryInstall {
    /// Not needed (the shim method), or already installed by our init container.
    Nothing,
    /// The init container to add carries [`INSTALL_BINARY_FLAG`] (and the
    /// volume to add gets [`BINARY_VOLUME_SIZE_LIMIT`]).
    WithInitContainer,
    /// Our init container exists without the flag: append it to the
    /// command of `spec.initContainers[index]`.
    AppendFlag {
        /// The index of our init container.
        index: usize,
    },
}

/// The init container's resources, chosen to keep the pod's QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitResources {
    /// No container of the pod sets CPU or memory: none either, so the pod
    /// stays BestEffort.
    Unset,
    /// The configured tiny requests, equal to the limits: a Guaranteed pod
    /// stays Guaranteed, a Burstable one Burstable, and a ResourceQuota
    /// that requires limits is satisfied.
    RequestsEqualLimits,
}

/// Secrets to add to `spec.imagePullSecrets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecrets {
    /// Append to the existing list, or create it ([`Add::Nothing`]: none missing).
    pub at: Add,
    /// The missing names, in configured order.
    pub names: Vec<String>,
}

/// Everything to add to a targeted pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The emptyDir volume.
    pub volume: Add,
    /// The install-shim init container (placed first).
    pub init_container: Add,
    /// The init container's resources.
    pub init_resources: InitResources,
    /// The configured image pull secrets the pod lacks (added with the init container).
    pub pull_secrets: PullSecrets,
    /// The selected containers that need something.
    pub containers: Vec<ContainerWork>,
    /// The metrics sidecar to add (`forcebacklog/metrics`).
    pub metrics: Option<MetricsSidecar>,
    /// The whole binary in the volume (`forcebacklog/method: supervise`).
    pub binary: BinaryInstall,
}

/// The metrics sidecar to insert into `spec.initContainers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSidecar {
    /// The port it serves `/metrics` on.
    pub port: u16,
    /// Its index in `spec.initContainers` once our init container is in
    /// place: right after it.
    pub index: usize,
}

impl Work {
    const NONE: Work = Work {
        volume: Add::Nothing,
        init_container: Add::Nothing,
        init_resources: InitResources::RequestsEqualLimits,
        pull_secrets: PullSecrets {
            at: Add::Nothing,
            names: Vec::new(),
        },
        containers: Vec::new(),
        metrics: None,
        binary: BinaryInstall::Nothing,
    };

    /// True when nothing needs to be added.
    pub fn is_empty(&self) -> bool {
        self.volume == Add::Nothing
            && self.init_container == Add::Nothing
            && self.pull_secrets.at == Add::Nothing
            && self.containers.is_empty()
            && self.metrics.is_none()
            && !matches!(self.binary, BinaryInstall::AppendFlag { .. })
    }
}

/// Where `forcebacklog/status` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAt {
    /// `metadata` is missing: create it.
    NoMetadata,
    /// `metadata.annotations` is missing: create it.
    NoAnnotations,
    /// `metadata.annotations` exists: add (or replace) the key.
    Annotations,
}

/// The `forcebacklog/status` annotation to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEdit {
    /// `injected` or `skipped: <reason>`.
    pub value: String,
    /// The shape of the pod's metadata.
    pub at: StatusAt,
}

/// The decision for one pod, and what it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The decision.
    pub verdict: Verdict,
    /// Admission warnings.
    pub warnings: Vec<String>,
    /// The status annotation, when it differs from the pod's.
    pub status: Option<StatusEdit>,
    /// What to add (empty unless the verdict is [`Verdict::Inject`]).
    pub work: Work,
}

/// The plan of a pod that is not targeted or opted out, from its
/// annotations alone; `None` when the rules need the whole pod (it is
/// targeted, or its annotations are invalid). The review answers most
/// pods with this without reading their spec.
pub fn plan_untargeted(annotations: &Annotations<'_>, defaults: Defaults) -> Option<Plan> {
    let verdict = match annotations::targeting(annotations, defaults) {
        Ok(Targeting::NotTargeted) => Verdict::NotTargeted,
        Ok(Targeting::OptedOut) => Verdict::OptedOut,
        Ok(Targeting::Targeted(_)) | Err(_) => return None,
    };
    Some(untouched(
        verdict,
        annotations.unknown_key_warnings().collect(),
    ))
}

/// Plans one pod: annotations → settings → per-container work, or a skip.
pub fn plan(pod: &PodView<'_>, defaults: Defaults, config: &InjectConfig) -> Plan {
    let empty = Annotations::default();
    let annotations = pod.annotations().unwrap_or(&empty);
    let mut warnings: Vec<String> = annotations.unknown_key_warnings().collect();
    let settings = match annotations::targeting(annotations, defaults) {
        Ok(Targeting::NotTargeted) => return untouched(Verdict::NotTargeted, warnings),
        Ok(Targeting::OptedOut) => return untouched(Verdict::OptedOut, warnings),
        Err(err) => return skip(pod, SkipReason::Invalid(err), warnings),
        Ok(Targeting::Targeted(settings)) => settings,
    };
    let (work, env_warnings) = match work(pod, &settings, config) {
        Ok(planned) => planned,
        Err(reason) => return skip(pod, reason, warnings),
    };
    // Re-invocation or our own output: nothing to add, nothing to repeat.
    let verdict = if work.is_empty() {
        Verdict::AlreadyInjected
    } else {
        warnings.extend(env_warnings);
        warnings.extend(somaxconn_warning(pod, &settings));
        Verdict::Inject
    };
    bound(&mut warnings);
    Plan {
        verdict,
        warnings,
        status: status_edit(pod, annotations::STATUS_INJECTED.to_owned()),
        work,
    }
}

/// The warning for a backlog above the default `net.core.somaxconn`
/// without a pod sysctl that allows it: the kernel caps it.
fn somaxconn_warning(pod: &PodView<'_>, settings: &Settings) -> Option<String> {
    let backlog = settings.backlog;
    let allowed = pod.somaxconn().is_some_and(|s| s >= u64::from(backlog));
    (backlog > DEFAULT_SOMAXCONN && !allowed).then(|| {
        format!(
            "forcebacklog: backlog {backlog} is above {DEFAULT_SOMAXCONN}: the kernel caps it at the pod's net.core.somaxconn (usually {DEFAULT_SOMAXCONN}) unless the pod sets the sysctl net.core.somaxconn to at least {backlog}"
        )
    })
}

/// Keeps the warnings of a pod with many containers to a readable few.
fn bound(warnings: &mut Vec<String>) {
    if warnings.len() > annotations::MAX_LISTED {
        let more = warnings.len() - (annotations::MAX_LISTED - 1);
        warnings.truncate(annotations::MAX_LISTED - 1);
        warnings.push(format!("forcebacklog: … and {more} more warnings"));
    }
}

fn untouched(verdict: Verdict, warnings: Vec<String>) -> Plan {
    Plan {
        verdict,
        warnings,
        status: None,
        work: Work::NONE,
    }
}

fn skip(pod: &PodView<'_>, reason: SkipReason, mut warnings: Vec<String>) -> Plan {
    warnings.push(format!("forcebacklog: pod not injected: {reason}"));
    Plan {
        status: status_edit(pod, format!("skipped: {reason}")),
        verdict: Verdict::Skip(reason),
        warnings,
        work: Work::NONE,
    }
}

fn status_edit(pod: &PodView<'_>, value: String) -> Option<StatusEdit> {
    let at = match &pod.metadata {
        None => StatusAt::NoMetadata,
        Some(meta) => match &meta.annotations {
            None => StatusAt::NoAnnotations,
            Some(a) if a.status_str() == Some(value.as_str()) => return None,
            Some(_) => StatusAt::Annotations,
        },
    };
    Some(StatusEdit { value, at })
}

/// The rules of a targeted pod, in order: the pod-level skips, the
/// selected containers and their skips (so a skipped pod gets no partial
/// work), then what to add. Returns the work and its warnings.
fn work(
    pod: &PodView<'_>,
    settings: &Settings,
    config: &InjectConfig,
) -> Result<(Work, Vec<String>), SkipReason> {
    skip_mirror_pod(pod)?;
    skip_windows(pod)?;
    let selected = select(pod, settings, &config.exclude_containers)?;
    for &at in &selected {
        let c = pod.container(at);
        match settings.method {
            Method::Shim => skip_ld_preload_value_from(c)?,
            Method::Supervise => skip_without_command(c)?,
        }
        skip_mount_at_or_below_ours(c)?;
        skip_read_only_parent(pod, c)?;
    }
    let volume = volume_to_add(pod)?;
    let init_container = init_container_to_add(pod)?;
    let binary = binary_to_install(pod, settings, init_container);
    let desired = desired_env(settings);
    let mut warnings = Vec::new();
    let mut containers = Vec::with_capacity(selected.len());
    for at in selected {
        let (work, container_warnings) = container_work(pod, at, &desired, settings);
        warnings.extend(container_warnings);
        if !work.is_empty() {
            containers.push(work);
        }
    }
    let (metrics, left_out) = metrics_sidecar_to_add(pod, settings, config, init_container)?;
    warnings.extend(left_out);
    let pull_secrets = if init_container == Add::Nothing {
        Work::NONE.pull_secrets
    } else {
        pull_secrets_to_add(pod, &config.image_pull_secrets)
    };
    let work = Work {
        volume,
        init_container,
        init_resources: init_resources(pod),
        pull_secrets,
        containers,
        metrics,
        binary,
    };
    Ok((work, warnings))
}

/// A mirror pod is the API server's copy of a static pod: the kubelet runs
/// the manifest file on its node, so a patch to this object changes nothing
/// that runs. Skipped, so its status says why the shim is not there.
fn skip_mirror_pod(pod: &PodView<'_>) -> Result<(), SkipReason> {
    match pod.annotations() {
        Some(a) if a.mirror => Err(SkipReason::MirrorPod),
        _ => Ok(()),
    }
}

/// The label that names a node's operating system.
const OS_LABEL: &str = "kubernetes.io/os";

/// A pod that runs on Windows nodes: `spec.os.name: windows`, the
/// nodeSelector `kubernetes.io/os: windows`, or a required node affinity
/// whose every term rules Linux out (`kubernetes.io/os In [windows]`,
/// `NotIn [linux]`).
fn skip_windows(pod: &PodView<'_>) -> Result<(), SkipReason> {
    let Some(spec) = &pod.spec else {
        return Ok(());
    };
    let os = spec.os.as_ref().and_then(|o| o.name.as_deref());
    let selector = spec.node_selector.as_ref().and_then(|n| n.os.as_deref());
    let terms = pod.required_node_terms();
    let affinity = !terms.is_empty() && terms.iter().all(term_excludes_linux);
    if os == Some("windows") || selector == Some("windows") || affinity {
        return Err(SkipReason::Windows);
    }
    Ok(())
}

/// One node selector term (its expressions are ANDed) that no Linux node matches.
fn term_excludes_linux(term: &NodeTermView<'_>) -> bool {
    term.match_expressions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|r| r.key == OS_LABEL)
        .any(|r| {
            let values = r.values.as_deref().unwrap_or_default();
            let linux = values.iter().any(|v| v == "linux");
            match r.operator.as_ref() {
                "In" => !values.is_empty() && !linux,
                "NotIn" => linux,
                _ => false,
            }
        })
}

/// The containers the settings select, as (list, index). Without
/// `forcebacklog/containers`, every app container except the configured
/// exclusions (service-mesh proxies); the annotation names anything.
fn select(
    pod: &PodView<'_>,
    settings: &Settings,
    excluded: &[String],
) -> Result<Vec<(List, usize)>, SkipReason> {
    let selected: Vec<(List, usize)> = match &settings.containers {
        Containers::AppContainers => pod
            .containers()
            .iter()
            .enumerate()
            .filter(|(_, c)| !excluded.iter().any(|e| *e == c.name))
            .map(|(i, _)| (List::Containers, i))
            .collect(),
        Containers::Named(names) => select_named(pod, names)?,
    };
    if selected.is_empty() {
        return Err(SkipReason::NoContainers);
    }
    Ok(selected)
}

/// The containers `forcebacklog/containers` names: app containers and
/// native sidecars; an unknown name makes the annotation invalid.
fn select_named(pod: &PodView<'_>, names: &[String]) -> Result<Vec<(List, usize)>, SkipReason> {
    let containers = pod.containers();
    let init = pod.init_containers();
    // Regular containers first: Kubernetes keeps names unique across both lists.
    let mut by_name: HashMap<&str, (List, usize)> = HashMap::new();
    for (i, c) in init.iter().enumerate() {
        if c.is_native_sidecar() {
            by_name.insert(&c.name, (List::InitContainers, i));
        }
    }
    for (i, c) in containers.iter().enumerate() {
        by_name.insert(&c.name, (List::Containers, i));
    }
    let mut selected = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    for name in names {
        match by_name.get(name.as_str()) {
            Some(&at) => selected.push(at),
            None if unknown.len() < annotations::MAX_LISTED => {
                unknown.push(annotations::clip(name));
            }
            None => {}
        }
    }
    if unknown.is_empty() {
        return Ok(selected);
    }
    let known = containers
        .iter()
        .chain(init.iter().filter(|c| c.is_native_sidecar()))
        .take(annotations::MAX_LISTED)
        .map(|c| annotations::clip(&c.name))
        .collect();
    let value = pod
        .annotations()
        .and_then(|a| match &a.containers {
            Some(Raw::Str(s)) => Some(annotations::clip(s)),
            _ => None,
        })
        .unwrap_or_default();
    Err(SkipReason::Invalid(AnnotationError::UnknownContainers {
        value,
        unknown,
        known,
    }))
}

/// A selected container that takes `LD_PRELOAD` from `valueFrom`: the
/// value is not known at admission, so the shim cannot be merged into it.
fn skip_ld_preload_value_from(c: &ContainerView<'_>) -> Result<(), SkipReason> {
    let from_value_from = c
        .env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|e| e.name == env::LD_PRELOAD && e.value_from.is_some());
    if from_value_from {
        return Err(SkipReason::LdPreloadValueFrom {
            container: annotations::clip(&c.name),
        });
    }
    Ok(())
}

/// `forcebacklog/method: supervise` wraps a container's explicit
/// `command`; without one (absent or empty: Kubernetes then runs the
/// image's entrypoint, which the webhook cannot see) there is nothing to
/// wrap, and the pod is skipped with the reason and the fix.
fn skip_without_command(c: &ContainerView<'_>) -> Result<(), SkipReason> {
    if c.command.as_deref().unwrap_or_default().is_empty() {
        return Err(SkipReason::NoCommand {
            container: annotations::clip(&c.name),
        });
    }
    Ok(())
}

/// A selected container that mounts something else at or below our mount
/// path: our read-only volume would hide it, or would need a mount point
/// created inside it. A mount above ours (`/opt`) is handled by
/// [`skip_read_only_parent`].
fn skip_mount_at_or_below_ours(c: &ContainerView<'_>) -> Result<(), SkipReason> {
    for m in c.mounts() {
        if is_our_mount(m) {
            continue;
        }
        if let Some(below) = within_mount_path(&m.mount_path) {
            let at = if below {
                format!("at {}, below", annotations::clip(&m.mount_path))
            } else {
                "at".to_owned()
            };
            return Err(SkipReason::Collision(format!(
                "container {} already mounts volume {} {at} {MOUNT_PATH}",
                annotations::clip(&c.name),
                annotations::clip(&m.name),
            )));
        }
    }
    Ok(())
}

/// A selected container with a read-only mount at a parent of our mount
/// path (`/opt`, `/`): the container runtime must create our mount point
/// inside it and fails, so the pod never starts (kubernetes/kubernetes
/// issue 121294). ConfigMap, Secret, projected and downward API volumes
/// are fine: the kubelet creates nested mount points in them itself.
fn skip_read_only_parent(pod: &PodView<'_>, c: &ContainerView<'_>) -> Result<(), SkipReason> {
    let volumes = pod.volumes().unwrap_or_default();
    for m in c.mounts() {
        if !is_above_mount_path(&m.mount_path) {
            continue;
        }
        let volume = volumes.iter().find(|v| v.name == m.name);
        let claim_read_only = volume
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|p| p.read_only == Some(true));
        let nested_mount_points = volume.is_some_and(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.projected.is_some()
                || v.downward_api.is_some()
        });
        if (m.read_only == Some(true) || claim_read_only) && !nested_mount_points {
            return Err(SkipReason::Collision(format!(
                "container {} mounts volume {} read-only at {}, above {MOUNT_PATH}: the mount point cannot be created",
                annotations::clip(&c.name),
                annotations::clip(&m.name),
                annotations::clip(&m.mount_path),
            )));
        }
    }
    Ok(())
}

/// Our emptyDir volume: already there, to add, or a collision with a
/// volume of the same name that is not an emptyDir.
fn volume_to_add(pod: &PodView<'_>) -> Result<Add, SkipReason> {
    let volumes = pod.volumes();
    match volumes
        .unwrap_or_default()
        .iter()
        .find(|v| v.name == VOLUME_NAME)
    {
        Some(v) if v.empty_dir.is_some() => Ok(Add::Nothing),
        Some(_) => Err(SkipReason::Collision(format!(
            "volume {VOLUME_NAME} already exists and is not an emptyDir"
        ))),
        None => Ok(Add::into_or_create(volumes.is_some())),
    }
}

/// Our init container: already there (recognised by its name, command and
/// volume mount), to add, or a collision. Container names are unique
/// across all lists of a pod, so a container of any kind with our name
/// that is not ours makes the API server refuse the pod.
fn init_container_to_add(pod: &PodView<'_>) -> Result<Add, SkipReason> {
    if pod
        .containers()
        .iter()
        .any(|c| c.name == INIT_CONTAINER_NAME)
    {
        return Err(SkipReason::Collision(format!(
            "container {INIT_CONTAINER_NAME} has the name of the init container forcebacklog adds"
        )));
    }
    let init = pod.spec.as_ref().and_then(|s| s.init_containers.as_deref());
    match init
        .unwrap_or_default()
        .iter()
        .find(|c| c.name == INIT_CONTAINER_NAME)
    {
        Some(c) if is_our_init_container(c) => Ok(Add::Nothing),
        Some(_) => Err(SkipReason::Collision(format!(
            "init container {INIT_CONTAINER_NAME} is not forcebacklog's (its command or volume differ)"
        ))),
        None => Ok(Add::into_or_create(init.is_some())),
    }
}

/// The metrics sidecar of `forcebacklog/metrics`: none when not asked
/// for or already there; a collision when a container of another kind
/// has its name; left out with a warning (the shim is still injected)
/// when the cluster has no native sidecars or a container declares the
/// port (the sidecar could not bind it). Returns the sidecar to add, if
/// any, and the warning that says why it was left out.
fn metrics_sidecar_to_add(
    pod: &PodView<'_>,
    settings: &Settings,
    config: &InjectConfig,
    init_container: Add,
) -> Result<(Option<MetricsSidecar>, Option<String>), SkipReason> {
    let Some(port) = settings.metrics else {
        return Ok((None, None));
    };
    let named = |c: &&ContainerView<'_>| c.name == METRICS_CONTAINER_NAME;
    if pod.containers().iter().any(|c| named(&c)) {
        return Err(SkipReason::Collision(format!(
            "container {METRICS_CONTAINER_NAME} has the name of the metrics sidecar forcebacklog adds"
        )));
    }
    let init = pod.init_containers();
    if let Some(existing) = init.iter().find(named) {
        return if is_our_metrics_sidecar(existing) {
            Ok((None, None))
        } else {
            Err(SkipReason::Collision(format!(
                "init container {METRICS_CONTAINER_NAME} is not forcebacklog's metrics sidecar"
            )))
        };
    }
    if !config.native_sidecars {
        let why = format!(
            "forcebacklog: {}: no metrics sidecar: it is a native sidecar, which needs Kubernetes 1.29 or later",
            annotations::METRICS
        );
        return Ok((None, Some(why)));
    }
    let declared = pod.containers().iter().chain(init).find(|c| {
        c.ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|p| p.container_port == Some(u64::from(port)))
    });
    if let Some(c) = declared {
        let why = format!(
            "forcebacklog: {}: no metrics sidecar: port {port} is already a port of container {}",
            annotations::METRICS,
            c.name
        );
        return Ok((None, Some(why)));
    }
    let index = match init_container {
        Add::Into | Add::Create => 1,
        Add::Nothing => init
            .iter()
            .position(is_our_init_container)
            .map_or(0, |i| i + 1),
    };
    Ok((Some(MetricsSidecar { port, index }), None))
}

/// Ours: a native sidecar running [`METRICS_COMMAND`] and an address.
fn is_our_metrics_sidecar(c: &ContainerView<'_>) -> bool {
    let command = c.command.as_deref().unwrap_or_default();
    c.is_native_sidecar()
        && command.len() == METRICS_COMMAND.len() + 1
        && command
            .iter()
            .zip(METRICS_COMMAND)
            .all(|(have, ours)| matches!(have, Raw::Str(s) if s == ours))
}

/// Ours: a plain init container running [`INSTALL_COMMAND`] with our
/// volume at our mount path (the image may be another version's).
fn is_our_init_container(c: &ContainerView<'_>) -> bool {
    let same_command = install_command_flag(c).is_some();
    !c.is_native_sidecar() && same_command && c.mounts().iter().any(is_our_mount)
}

/// Whether a command is [`INSTALL_COMMAND`] (`Some(false)`), or
/// [`INSTALL_COMMAND`] with [`INSTALL_BINARY_FLAG`] (`Some(true)`), or
/// neither (`None`).
fn install_command_flag(c: &ContainerView<'_>) -> Option<bool> {
    let command = c.command.as_deref().unwrap_or_default();
    let is = |have: &Raw<'_>, ours: &str| matches!(have, Raw::Str(s) if s == ours);
    let (head, flag) = match command.len() {
        3 => (command, false),
        4 if is(&command[3], INSTALL_BINARY_FLAG) => (&command[..3], true),
        _ => return None,
    };
    head.iter()
        .zip(INSTALL_COMMAND)
        .all(|(have, ours)| is(have, ours))
        .then_some(flag)
}

/// The whole binary for `forcebacklog/method: supervise`: installed by
/// the init container to add, or by ours when it has the flag; our init
/// container without it (a pod injected with the shim method before) gets
/// the flag appended. Nothing for the shim method.
fn binary_to_install(pod: &PodView<'_>, settings: &Settings, init_container: Add) -> BinaryInstall {
    if settings.method != Method::Supervise {
        return BinaryInstall::Nothing;
    }
    if init_container != Add::Nothing {
        return BinaryInstall::WithInitContainer;
    }
    match pod
        .init_containers()
        .iter()
        .position(|c| c.name == INIT_CONTAINER_NAME && is_our_init_container(c))
    {
        Some(index) if install_command_flag(&pod.init_containers()[index]) == Some(false) => {
            BinaryInstall::AppendFlag { index }
        }
        _ => BinaryInstall::Nothing,
    }
}

/// The init container's resources that keep the pod's QoS class: none
/// when no container (nor the pod) sets a CPU or memory request or limit.
fn init_resources(pod: &PodView<'_>) -> InitResources {
    let pod_level = pod
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .is_some_and(ResourcesView::sets_any);
    let any_container = pod
        .containers()
        .iter()
        .chain(pod.init_containers())
        .any(ContainerView::sets_resources);
    if pod_level || any_container {
        InitResources::RequestsEqualLimits
    } else {
        InitResources::Unset
    }
}

/// The configured image pull secrets the pod does not list yet.
fn pull_secrets_to_add(pod: &PodView<'_>, configured: &[String]) -> PullSecrets {
    let existing = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_deref());
    let mut names: Vec<String> = Vec::new();
    for name in configured {
        let listed = existing
            .unwrap_or_default()
            .iter()
            .any(|s| s.name == name.as_str());
        if !listed && !names.contains(name) {
            names.push(name.clone());
        }
    }
    let at = if names.is_empty() {
        Add::Nothing
    } else {
        Add::into_or_create(existing.is_some())
    };
    PullSecrets { at, names }
}

/// The variables every selected container should have, in order. None
/// under `forcebacklog/method: supervise`: the settings are arguments of
/// the wrapped command ([`wrap_command`]), and `LD_PRELOAD` is not used.
fn desired_env(settings: &Settings) -> Vec<(&'static str, String)> {
    if settings.method == Method::Supervise {
        return Vec::new();
    }
    let mut desired: Vec<(&'static str, String)> = Vec::with_capacity(4);
    desired.push((env::BACKLOG, settings.backlog.to_string()));
    desired.push((env::LD_PRELOAD, SHIM_PATH.to_owned()));
    if let Some(mode) = settings.mode {
        desired.push((env::MODE, mode.as_str().to_owned()));
    }
    if let Some(ports) = &settings.ports {
        desired.push((env::PORTS, ports.clone()));
    }
    desired
}

/// What one selected container gets: the mount and the env edits, with
/// the warnings about values the pod keeps.
fn container_work(
    pod: &PodView<'_>,
    (list, index): (List, usize),
    desired: &[(&'static str, String)],
    settings: &Settings,
) -> (ContainerWork, Vec<String>) {
    let c = pod.container((list, index));
    let mount = if c.mounts().iter().any(is_our_mount) {
        Add::Nothing
    } else {
        Add::into_or_create(c.volume_mounts.is_some())
    };
    let mut warnings = Vec::new();
    let mut env = Vec::with_capacity(desired.len());
    for (name, value) in desired {
        let (edit, warning) = env_edit(c, name, value);
        env.extend(edit);
        warnings.extend(warning);
    }
    warnings.extend(env_from_warning(c, &env));
    let command_prefix = match settings.method {
        Method::Shim => None,
        Method::Supervise => {
            warnings.extend(supervise_backlog_warning(c, settings));
            wrap_command(c, settings)
        }
    };
    let work = ContainerWork {
        list,
        index,
        name: c.name.to_string(),
        mount,
        env_present: c.env.is_some(),
        env,
        command_prefix,
    };
    (work, warnings)
}

/// What goes before a container's command under `forcebacklog/method:
/// supervise`, so that it runs as `/opt/forcebacklog/forcebacklog run
/// --backlog N [--mode M] --method supervise -- <its command…>`. `--mode`
/// only when `forcebacklog/mode` is annotated (the default is `raise`, as
/// with the shim). The command's own elements and `args` are not touched:
/// Kubernetes appends `args` to the command, after ours. `None` when the
/// command is already wrapped (re-invocation, `inject` output), or is not
/// a list of strings (the API server refuses such a pod anyway).
fn wrap_command(c: &ContainerView<'_>, settings: &Settings) -> Option<Vec<String>> {
    let command = c.command.as_deref().unwrap_or_default();
    if is_wrapped(command) || command.iter().any(|p| matches!(p, Raw::NotString(_))) {
        return None;
    }
    let mut wrapped = vec![
        BINARY_PATH.to_owned(),
        "run".to_owned(),
        "--backlog".to_owned(),
        settings.backlog.to_string(),
    ];
    if let Some(mode) = settings.mode {
        wrapped.extend(["--mode".to_owned(), Mode::as_str(mode).to_owned()]);
    }
    wrapped.extend([
        "--method".to_owned(),
        Method::Supervise.as_str().to_owned(),
        "--".to_owned(),
    ]);
    Some(wrapped)
}

/// A command that already runs under [`BINARY_PATH`].
fn is_wrapped(command: &[Raw<'_>]) -> bool {
    matches!(command.first(), Some(Raw::Str(s)) if s == BINARY_PATH)
}

/// Under `forcebacklog/method: supervise` the backlog is an argument of the
/// wrapped command, so a `BACKLOG` the container sets is not read by
/// forcebacklog (unlike with the shim, where it is kept and wins); the
/// warning says so when it differs from the annotation's.
fn supervise_backlog_warning(c: &ContainerView<'_>, settings: &Settings) -> Option<String> {
    let (_, existing) = c.env_var(env::BACKLOG)?;
    let ours = settings.backlog.to_string();
    if existing.value_from.is_none() && existing.value.as_deref() == Some(ours.as_str()) {
        return None;
    }
    Some(format!(
        "forcebacklog: container {}: {} set by the pod is not read under forcebacklog/method \"supervise\" (backlog {ours} applies)",
        annotations::clip(&c.name),
        env::BACKLOG
    ))
}

/// The edit for one desired variable: added when missing; `LD_PRELOAD`
/// merged (the shim first, the user's list kept after it; `valueFrom` was
/// ruled out by [`skip_ld_preload_value_from`]); any other variable the
/// pod sets is kept ([`keep_user_value`]). Returns the edit, if any, and
/// a warning, if any.
fn env_edit(
    c: &ContainerView<'_>,
    name: &'static str,
    value: &str,
) -> (Option<EnvEdit>, Option<String>) {
    match c.env_var(name) {
        None => {
            let value = value.to_owned();
            (Some(EnvEdit::Add { name, value }), None)
        }
        Some((index, existing)) if name == env::LD_PRELOAD => {
            let merged = merge_ld_preload(existing.value.as_deref().unwrap_or(""));
            (merged.map(|value| EnvEdit::SetValue { index, value }), None)
        }
        Some((_, existing)) => (None, keep_user_value(c, existing, value)),
    }
}

/// A variable set by the user (`BACKLOG`, `FORCEBACKLOG_MODE`, …) is never
/// overwritten; the warning says so when it differs from ours.
fn keep_user_value(c: &ContainerView<'_>, existing: &EnvView<'_>, ours: &str) -> Option<String> {
    let name = &existing.name;
    let container = annotations::clip(&c.name);
    if existing.value_from.is_some() {
        return Some(format!(
            "forcebacklog: container {container}: {name} from valueFrom is kept ({ours} not applied)"
        ));
    }
    let current = existing.value.as_deref().unwrap_or("");
    (current != ours).then(|| {
        format!(
            "forcebacklog: container {container}: {name}={} set by the pod is kept ({ours} not applied)",
            annotations::clip(current)
        )
    })
}

/// The warning for a container with `envFrom` that gets variables added
/// to its `env`. Kubernetes gives `env` precedence over `envFrom`, and the
/// ConfigMaps and Secrets behind `envFrom` are not visible at admission, so
/// a `BACKLOG` or `LD_PRELOAD` they provide would be overridden silently.
/// Injection goes ahead (the common `envFrom` holds neither); the warning
/// names the container and the variables.
fn env_from_warning(c: &ContainerView<'_>, edits: &[EnvEdit]) -> Option<String> {
    if c.env_from.as_deref().unwrap_or_default().is_empty() {
        return None;
    }
    let added: Vec<&str> = edits
        .iter()
        .filter_map(|e| match e {
            EnvEdit::Add { name, .. } => Some(*name),
            EnvEdit::SetValue { .. } => None,
        })
        .collect();
    let (last, rest) = added.split_last()?;
    let names = if rest.is_empty() {
        (*last).to_owned()
    } else {
        format!("{} or {last}", rest.join(", "))
    };
    Some(format!(
        "forcebacklog: container {} uses envFrom: a value it provides for {names} is overridden by the injected env",
        annotations::clip(&c.name)
    ))
}

/// Our volume at our mount path (`/opt/forcebacklog` or `/opt/forcebacklog/`).
fn is_our_mount(m: &MountView<'_>) -> bool {
    m.name == VOLUME_NAME && within_mount_path(&m.mount_path) == Some(false)
}

/// The segments of a path, without the empty and `.` ones. Split by a
/// set of chars, not by the char: mount paths are short, and the char's
/// searcher sets up a memchr for every segment.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split(['/']).filter(|s| !s.is_empty() && *s != ".")
}

/// A mount path strictly above [`MOUNT_PATH`]: `/`, `/opt` (`//opt/`
/// alike); not `/opt/forcebacklog` itself, nor `/op`.
fn is_above_mount_path(path: &str) -> bool {
    let mut ours = segments(MOUNT_PATH);
    for segment in segments(path) {
        if ours.next() != Some(segment) {
            return false;
        }
    }
    // Every segment matched ours, and ours goes on.
    ours.next().is_some()
}

/// Where a mount path lies relative to [`MOUNT_PATH`]: `Some(false)` at it,
/// `Some(true)` below it, `None` elsewhere (above it, or beside it such as
/// `/opt/forcebacklog2`). Empty and `.` segments are ignored, so
/// `/opt//forcebacklog/` is `/opt/forcebacklog`.
fn within_mount_path(path: &str) -> Option<bool> {
    let mut segments = segments(path);
    for ours in self::segments(MOUNT_PATH) {
        if segments.next() != Some(ours) {
            return None;
        }
    }
    Some(segments.next().is_some())
}

/// The new `LD_PRELOAD` value of an app container, or `None` when the
/// shim is already listed: [`preload_with_shim`] with [`SHIM_PATH`].
pub fn merge_ld_preload(existing: &str) -> Option<String> {
    preload_with_shim(SHIM_PATH.as_bytes(), existing.as_bytes())
        // Both inputs are UTF-8 and only ASCII separators are added.
        .map(|merged| {
            String::from_utf8(merged)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
}

/// The one `LD_PRELOAD` rule, for the webhook and for `forcebacklog run`:
/// the shim goes FIRST and the existing list is kept after it, with its
/// own separator (`:`, or a space when the list uses spaces; `:` for a
/// single entry). The shim chains to the next `listen` in the lookup
/// order, so a later library that also wraps `listen` still runs; a
/// library placed before it that does not chain would bypass it.
/// Returns `None` when `shim` is already listed anywhere (nothing to do).
/// Empty entries at either end of the existing list are dropped.
/// Bytes, not text: an inherited `LD_PRELOAD` need not be UTF-8.
pub fn preload_with_shim(shim: &[u8], existing: &[u8]) -> Option<Vec<u8>> {
    let is_separator = |b: &u8| *b == b':' || b.is_ascii_whitespace();
    if existing.split(is_separator).any(|entry| entry == shim) {
        return None;
    }
    let start = existing
        .iter()
        .position(|b| !is_separator(b))
        .unwrap_or(existing.len());
    let end = existing
        .iter()
        .rposition(|b| !is_separator(b))
        .map_or(start, |i| i + 1);
    let rest = &existing[start..end];
    let mut merged = shim.to_vec();
    if !rest.is_empty() {
        let separator = if rest.contains(&b':') {
            b':'
        } else if rest.iter().any(u8::is_ascii_whitespace) {
            b' '
        } else {
            b':'
        };
        merged.push(separator);
        merged.extend_from_slice(rest);
    }
    Some(merged)
}

#[cfg(test)]
mod tests;
