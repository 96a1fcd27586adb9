//! What the operator configures for injection: shared by `serve` and `inject`.

/// The init container's resource requests and limits (quota-safe, tiny).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitResources {
    /// `resources.requests.cpu` and `resources.limits.cpu`.
    pub cpu: String,
    /// `resources.requests.memory` and `resources.limits.memory`.
    pub memory: String,
}

impl Default for InitResources {
    fn default() -> Self {
        Self {
            cpu: "10m".to_owned(),
            memory: "16Mi".to_owned(),
        }
    }
}

/// Everything the mutation core needs besides the pod itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    /// The backlog for pods opted in by their namespace label (and for
    /// `inject --backlog`).
    pub default_backlog: u16,
    /// The image of the `install-shim` init container (this binary's image).
    pub image: String,
    /// `imagePullPolicy` of the init container, when set.
    pub image_pull_policy: Option<String>,
    /// Requests and limits of the init container.
    pub init_resources: InitResources,
    /// `sizeLimit` of the emptyDir that holds the shim.
    pub volume_size_limit: String,
}

/// The image this build injects when none is configured.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/forcebacklog/forcebacklog:",
    env!("CARGO_PKG_VERSION")
);

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            default_backlog: 4096,
            image: DEFAULT_IMAGE.to_owned(),
            image_pull_policy: None,
            init_resources: InitResources::default(),
            volume_size_limit: "1Mi".to_owned(),
        }
    }
}
