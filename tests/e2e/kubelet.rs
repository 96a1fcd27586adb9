//! Runs a Pod spec on a Docker engine the way a kubelet would, taking
//! everything from the spec: a sandbox that owns the pod's network
//! namespace, a host directory (world-writable, like an emptyDir) per
//! emptyDir volume, the init containers in order (each must exit 0), then
//! the app containers; image, command/args, env, mounts, user/group,
//! read-only root, capabilities, no-new-privileges and resource limits are
//! all read from the spec. Fields it cannot honour are an error, never
//! silently dropped.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs `docker ARGS`; stdout on success, a message with stderr otherwise.
pub fn docker(args: &[String]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("running docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "`docker {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// `docker` with string slices.
pub fn docker_str(args: &[&str]) -> Result<String, String> {
    docker(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

/// Containers and images to remove when the test ends, pass or fail.
#[derive(Default)]
pub struct Cleanup {
    containers: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
}

impl Cleanup {
    /// Removes `name` (a container) at the end.
    pub fn container(&self, name: &str) {
        self.containers
            .lock()
            .expect("cleanup list")
            .push(name.to_owned());
    }

    /// Removes `tag` (an image) at the end.
    pub fn image(&self, tag: &str) {
        self.images
            .lock()
            .expect("cleanup list")
            .push(tag.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut *self.containers.lock().expect("cleanup list"));
        if !containers.is_empty() {
            let mut args = vec!["rm".to_owned(), "-f".to_owned(), "-v".to_owned()];
            args.extend(containers);
            let _ = docker(&args);
        }
        let images = std::mem::take(&mut *self.images.lock().expect("cleanup list"));
        if !images.is_empty() {
            let mut args = vec!["rmi".to_owned(), "-f".to_owned()];
            args.extend(images);
            let _ = docker(&args);
        }
    }
}

/// A pod started on Docker.
#[derive(Debug)]
pub struct RunningPod {
    /// The sandbox container (owns the network namespace).
    pub sandbox: String,
    /// PID of the sandbox process, for `nsenter -t PID -n`.
    pub pid: u32,
    /// App container name by spec container name.
    pub containers: Vec<(String, String)>,
}

/// Starts `pod` (a Pod object). `pause_image` is the sandbox image;
/// `volumes_root` is where emptyDir directories are made; `prefix` makes
/// the container names unique.
pub fn run_pod(
    pod: &Value,
    prefix: &str,
    pause_image: &str,
    volumes_root: &Path,
    cleanup: &Cleanup,
) -> Result<RunningPod, String> {
    let spec = &pod["spec"];
    let volumes = make_volumes(spec, &volumes_root.join(prefix))?;

    let sandbox = format!("{prefix}-sandbox");
    cleanup.container(&sandbox);
    docker_str(&[
        "run",
        "-d",
        "--pull",
        "never",
        "--name",
        &sandbox,
        "--network",
        "none",
        pause_image,
    ])?;
    let pid: u32 = docker_str(&["inspect", "-f", "{{.State.Pid}}", &sandbox])?
        .parse()
        .map_err(|e| format!("sandbox PID: {e}"))?;

    for init in spec["initContainers"].as_array().into_iter().flatten() {
        let name = format!("{prefix}-{}", str_field(init, "name")?);
        cleanup.container(&name);
        let mut args = vec!["run".to_owned(), "--name".to_owned(), name.clone()];
        args.extend(container_flags(spec, init, &sandbox, &volumes)?);
        // Attached: `docker run` exits with the container's status.
        docker(&args).map_err(|e| format!("init container {name} did not succeed: {e}"))?;
    }

    let mut containers = Vec::new();
    for container in spec["containers"].as_array().into_iter().flatten() {
        let spec_name = str_field(container, "name")?.to_owned();
        let name = format!("{prefix}-{spec_name}");
        cleanup.container(&name);
        let mut args = vec![
            "run".to_owned(),
            "-d".to_owned(),
            "--name".to_owned(),
            name.clone(),
        ];
        args.extend(container_flags(spec, container, &sandbox, &volumes)?);
        docker(&args)?;
        containers.push((spec_name, name));
    }
    Ok(RunningPod {
        sandbox,
        pid,
        containers,
    })
}

/// One directory per emptyDir volume, mode 0777 like the kubelet's.
fn make_volumes(spec: &Value, root: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let name = str_field(volume, "name")?;
        if !volume["emptyDir"].is_object() {
            return Err(format!(
                "volume {name}: only emptyDir volumes are supported: {volume}"
            ));
        }
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        out.push((name.to_owned(), dir));
    }
    Ok(out)
}

fn str_field<'a>(object: &'a Value, key: &str) -> Result<&'a str, String> {
    object[key]
        .as_str()
        .ok_or_else(|| format!("missing string field {key} in {object}"))
}

/// The securityContext field `key`, container level first, then pod level.
fn security<'a>(pod_spec: &'a Value, container: &'a Value, key: &str) -> &'a Value {
    let own = &container["securityContext"][key];
    if own.is_null() {
        &pod_spec["securityContext"][key]
    } else {
        own
    }
}

/// `docker run` flags (after `--name`) for one container of the spec.
fn container_flags(
    pod_spec: &Value,
    c: &Value,
    sandbox: &str,
    volumes: &[(String, PathBuf)],
) -> Result<Vec<String>, String> {
    let name = str_field(c, "name")?;
    let mut f: Vec<String> = vec![
        "--pull".into(),
        "never".into(),
        "--network".into(),
        format!("container:{sandbox}"),
    ];

    // User and group.
    let user = security(pod_spec, c, "runAsUser").as_u64();
    let group = security(pod_spec, c, "runAsGroup").as_u64();
    if security(pod_spec, c, "runAsNonRoot") == true && user.is_none_or(|u| u == 0) {
        return Err(format!("{name}: runAsNonRoot without a non-zero runAsUser"));
    }
    match (user, group) {
        (Some(u), Some(g)) => f.extend(["--user".into(), format!("{u}:{g}")]),
        (Some(u), None) => f.extend(["--user".into(), u.to_string()]),
        (None, Some(_)) => return Err(format!("{name}: runAsGroup without runAsUser")),
        (None, None) => {}
    }
    let sc = &c["securityContext"];
    if sc["privileged"] == true {
        return Err(format!("{name}: privileged containers are not supported"));
    }
    if sc["readOnlyRootFilesystem"] == true {
        f.push("--read-only".into());
    }
    if sc["allowPrivilegeEscalation"] == false {
        f.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    for cap in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
        f.extend(["--cap-drop".into(), cap.as_str().unwrap_or("?").to_owned()]);
    }
    for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
        f.extend(["--cap-add".into(), cap.as_str().unwrap_or("?").to_owned()]);
    }
    match security(pod_spec, c, "seccompProfile")["type"].as_str() {
        None | Some("RuntimeDefault") => {} // Docker's default profile
        Some("Unconfined") => f.extend(["--security-opt".into(), "seccomp=unconfined".into()]),
        Some(other) => return Err(format!("{name}: seccompProfile {other} is not supported")),
    }

    // Environment.
    for env in c["env"].as_array().into_iter().flatten() {
        let key = str_field(env, "name")?;
        if !env["valueFrom"].is_null() {
            return Err(format!("{name}: env {key} uses valueFrom, not supported"));
        }
        let value = env["value"].as_str().unwrap_or("");
        f.extend(["-e".into(), format!("{key}={value}")]);
    }

    // Mounts.
    for mount in c["volumeMounts"].as_array().into_iter().flatten() {
        let volume = str_field(mount, "name")?;
        if !mount["subPath"].is_null() {
            return Err(format!("{name}: subPath mounts are not supported"));
        }
        let (_, dir) = volumes
            .iter()
            .find(|(v, _)| v == volume)
            .ok_or_else(|| format!("{name}: mount of unknown volume {volume}"))?;
        let ro = if mount["readOnly"] == true { ":ro" } else { "" };
        f.extend([
            "-v".into(),
            format!("{}:{}{ro}", dir.display(), str_field(mount, "mountPath")?),
        ]);
    }

    // Limits.
    if let Some(memory) = c["resources"]["limits"]["memory"].as_str() {
        f.extend(["--memory".into(), memory_bytes(memory)?.to_string()]);
    }
    if let Some(cpu) = c["resources"]["limits"]["cpu"].as_str() {
        f.extend(["--cpus".into(), cpus(cpu)?]);
    }
    if let Some(dir) = c["workingDir"].as_str() {
        f.extend(["-w".into(), dir.to_owned()]);
    }

    // Image, command (entrypoint) and args, with Kubernetes semantics.
    let command: Vec<&str> = strings(&c["command"])?;
    let args: Vec<&str> = strings(&c["args"])?;
    if let Some(entrypoint) = command.first() {
        f.extend(["--entrypoint".into(), (*entrypoint).to_owned()]);
    }
    f.push(str_field(c, "image")?.to_owned());
    f.extend(command.iter().skip(1).map(|s| (*s).to_owned()));
    f.extend(args.iter().map(|s| (*s).to_owned()));
    Ok(f)
}

fn strings(value: &Value) -> Result<Vec<&str>, String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().ok_or_else(|| format!("not a string: {v}")))
        .collect()
}

/// A Kubernetes memory quantity in bytes (`16Mi`, `64M`, `1Gi`, `1000`).
fn memory_bytes(quantity: &str) -> Result<u64, String> {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    let (number, factor) = units
        .iter()
        .find_map(|(suffix, f)| quantity.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((quantity, 1));
    number
        .parse::<u64>()
        .map(|n| n * factor)
        .map_err(|_| format!("unsupported memory quantity {quantity}"))
}

/// A Kubernetes CPU quantity as `docker --cpus` (`10m` → `0.010`).
fn cpus(quantity: &str) -> Result<String, String> {
    let millis = match quantity.strip_suffix('m') {
        Some(m) => m.parse::<u64>(),
        None => quantity.parse::<u64>().map(|c| c * 1000),
    }
    .map_err(|_| format!("unsupported cpu quantity {quantity}"))?;
    // Docker's smallest CPU quota is 0.01.
    Ok(format!("{:.3}", (millis.max(10) as f64) / 1000.0))
}

/// `(local port, Send-Q)` of every TCP LISTEN socket in the network
/// namespace of `pid`, from `nsenter -t PID -n ss -Hltn`.
pub fn listeners(pid: u32) -> Result<Vec<(u16, u32)>, String> {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ss", "-Hltn"])
        .output()
        .map_err(|e| format!("running nsenter: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nsenter -t {pid} -n ss -Hltn: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines() {
        // State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 || cols[0] != "LISTEN" {
            continue;
        }
        let send_q: u32 = cols[2]
            .parse()
            .map_err(|_| format!("bad ss line: {line}"))?;
        let port: u16 = cols[3]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("bad ss line: {line}"))?;
        found.push((port, send_q));
    }
    found.sort_unstable();
    Ok(found)
}

/// Waits until every port in `ports` listens in the pod; returns the
/// listeners. On timeout, the error carries the containers' logs.
pub fn wait_for_listeners(pod: &RunningPod, ports: &[u16]) -> Result<Vec<(u16, u32)>, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = listeners(pod.pid)?;
        if ports.iter().all(|p| found.iter().any(|(q, _)| q == p)) {
            return Ok(found);
        }
        if Instant::now() > deadline {
            let mut logs = String::new();
            for (_, name) in &pod.containers {
                let state = docker_str(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}} exit={{.State.ExitCode}}",
                    name,
                ])
                .unwrap_or_default();
                let log = docker_str(&["logs", name]).unwrap_or_else(|e| e);
                logs.push_str(&format!("\n{name} ({state}): {log}"));
            }
            return Err(format!(
                "ports {ports:?} not listening after 20s (found {found:?});{logs}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(memory_bytes("16Mi"), Ok(16 << 20));
        assert_eq!(memory_bytes("64M"), Ok(64_000_000));
        assert!(memory_bytes("lots").is_err());
        assert_eq!(cpus("10m").as_deref(), Ok("0.010"));
        assert_eq!(cpus("2").as_deref(), Ok("2.000"));
        assert_eq!(cpus("1m").as_deref(), Ok("0.010"));
    }
}
