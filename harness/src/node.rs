//! One real node next to a plane: containerd, runc, the CNI plugins and a kubelet, so pods
//! really run (the image, the chart's pods, `kubectl exec`, a rollout that really fails).
//! What it takes on this machine kind, and why each setting is there, is in
//! `../shared/docs/real-node.md`; the shell parts are the three scripts in `harness/node/`.
//!
//! - **Network**: a network namespace for the node, joined to this machine by a veth pair
//!   whose two addresses the harness makes ([`HOST_IP`] here, where the apiserver listens;
//!   [`NODE_IP`] there, the kubelet's node IP). Pods sit on a bridge in the namespace
//!   ([`POD_CIDR`]); nothing routes out of it, so every address a test or pod talks to is
//!   loopback or one of these. The `kubernetes` Service's ClusterIP is DNATed to the
//!   apiserver inside the namespace: pods use in-cluster config as in any cluster. Webhooks
//!   behind a Service are called at their pod IP (`--enable-aggregator-routing`).
//! - **Mounts and settings**: containerd and the kubelet run in a private mount namespace;
//!   every pod mount disappears with it, and the kernel settings the kubelet wants are files
//!   of ours bind-mounted over /proc/sys.
//! - **One at a time**: the node's names (namespace, veth, `kubepods` cgroups) are fixed, so
//!   a lock file serialises nodes across test binaries; a reaper that holds the lock runs
//!   `node-down.sh` when this process ends, however it ends, and only then frees it.
//! - **Images**: no registry; OCI archives (`hack/build-node.sh`: pause and busybox;
//!   `hack/build-image.sh`: hashroll) are imported into containerd's `k8s.io` namespace, and
//!   pods use them with `imagePullPolicy: IfNotPresent` or `Never`.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::plane::{Plane, PlaneError, PlaneOptions, version};

/// This machine's end of the veth pair: the apiserver listens here.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// The node's end, in its namespace: the kubelet's node IP.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
/// The pods' network, a bridge inside the node's namespace.
pub const POD_CIDR: &str = "10.214.0.0/24";
/// The node's name.
pub const NODE_NAME: &str = "hashroll-node";
/// The images every node has: (archive file in the build folder, image name).
pub const BUSYBOX: &str = "docker.io/library/busybox:hashroll";
const NETNS: &str = "hashroll-node";
const HOST_IF: &str = "hrnode-host";
const NODE_IF: &str = "hrnode-node";
const SERVICE_IP: &str = "10.0.0.1";
const LOCK: &str = "/run/lock/hashroll-node.lock";

const NET_UP: &str = include_str!("../node/net-up.sh");
const NODE_RUN: &str = include_str!("../node/node-run.sh");
const NODE_DOWN: &str = include_str!("../node/node-down.sh");

/// Why a real node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// this machine cannot run one (not root, no cgroups, no network namespaces): the
    /// tests that need it are reported as not run
    #[error("this machine cannot run a real node: {0}")]
    Unsupported(String),
    /// it should run and did not: a failure
    #[error("the real node failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Plane(#[from] PlaneError),
}

fn failed(context: &str) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |e| NodeError::Failed(format!("{context}: {e}"))
}

/// Where `hack/build-node.sh` puts kubelet, containerd and the images.
pub fn default_node_dir() -> PathBuf {
    crate::plane::cache_dir().join("node").join(format!(
        "{}-{}",
        version("KUBERNETES_VERSION"),
        version("CONTAINERD_VERSION")
    ))
}

/// What the machine lacks for a real node, if anything (the reason, in one line).
pub fn machine_check() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_string));
    if uid.as_deref() != Some("0") {
        return Some("not root (a kubelet and containerd need root)".into());
    }
    let v1_memory = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    let v2_memory = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .map(|c| c.split_whitespace().any(|x| x == "memory"))
        .unwrap_or(false);
    if !v1_memory && !v2_memory {
        return Some("no memory cgroup controller (neither cgroup v1 nor v2)".into());
    }
    if !Path::new("/proc/self/ns/net").exists() || !Path::new("/proc/self/ns/mnt").exists() {
        return Some("no network or mount namespaces".into());
    }
    for tool in ["ip", "nsenter", "unshare", "iptables", "mount"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// A plane with one real node. Dropping it tears both down.
pub struct RealNode {
    dir: PathBuf,
    bin: PathBuf,
    env: Vec<(String, String)>,
    wrapper: Option<Child>,
    reaper: Option<(Child, ChildStdin)>,
    /// the plane, dropped after the node
    plane: Option<Plane>,
    /// how long `start` took, plane included
    pub startup: Duration,
    _lock: File,
}

impl RealNode {
    /// Checks the machine, takes the one-node lock (waiting for another binary's node to
    /// go), makes the network, starts a plane for it, then containerd and the kubelet with
    /// the pause and busybox images, and waits until the node is Ready.
    pub fn start() -> Result<RealNode, NodeError> {
        if let Some(reason) = machine_check() {
            return Err(NodeError::Unsupported(reason));
        }
        let t0 = Instant::now();
        let build = default_node_dir();
        let bin = build.join("bin");
        for b in ["kubelet", "containerd", "ctr", "containerd-shim-runc-v2"] {
            if !bin.join(b).exists() {
                return Err(NodeError::Failed(format!(
                    "{} not found: run `make node` first",
                    bin.join(b).display()
                )));
            }
        }
        let images = ["pause.oci.tar", "busybox.oci.tar"].map(|i| build.join("images").join(i));
        if let Some(missing) = images.iter().find(|i| !i.exists()) {
            return Err(NodeError::Failed(format!(
                "{} not found: run `make node` first",
                missing.display()
            )));
        }
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| NodeError::Failed("runc not found: run `make node`".into()))?;
        let cni = Path::new("/usr/lib/cni");
        if !cni.join("bridge").exists() {
            return Err(NodeError::Failed(
                "/usr/lib/cni/bridge not found: run `make node`".into(),
            ));
        }

        let lock = File::create(LOCK).map_err(failed("creating the node lock"))?;
        lock.lock().map_err(failed("taking the node lock"))?;
        let dir = tempfile::Builder::new()
            .prefix("hashroll-node-")
            .tempdir()
            .map_err(failed("creating the node folder"))?
            .keep();
        for d in [
            "logs",
            "sysctl",
            "cni/net.d",
            "cni/ipam",
            "containerd",
            "kubelet",
        ] {
            std::fs::create_dir_all(dir.join(d)).map_err(failed("creating the node folder"))?;
        }
        for (name, text) in [
            ("net-up.sh", NET_UP),
            ("node-run.sh", NODE_RUN),
            ("node-down.sh", NODE_DOWN),
        ] {
            std::fs::write(dir.join(name), text).map_err(failed("writing the node scripts"))?;
        }
        let env: Vec<(String, String)> = [
            ("NODE_DIR", dir.display().to_string()),
            ("NODE_BIN", bin.display().to_string()),
            ("NODE_NAME", NODE_NAME.into()),
            ("NETNS", NETNS.into()),
            ("HOST_IF", HOST_IF.into()),
            ("NODE_IF", NODE_IF.into()),
            ("HOST_IP", HOST_IP.to_string()),
            ("NODE_IP", NODE_IP.to_string()),
            ("POD_CIDR", POD_CIDR.into()),
            ("SERVICE_IP", SERVICE_IP.into()),
            ("RUNC", runc.into()),
            (
                "NODE_IMAGES",
                images
                    .iter()
                    .map(|i| i.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut node = RealNode {
            dir,
            bin,
            env,
            wrapper: None,
            reaper: None,
            plane: None,
            startup: Duration::ZERO,
            _lock: lock,
        };
        // what a run killed before its reaper finished may have left (same names)
        node.script("node-down.sh", &[])?;
        node.start_reaper()?;
        node.script("net-up.sh", &[])?;
        let plane = Plane::start(PlaneOptions {
            real_node: Some(HOST_IP),
            ..PlaneOptions::default()
        })?;
        let api_port = plane
            .server()
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        node.env.push(("API_PORT".into(), api_port));
        node.write_configs(&plane, runc, cni)?;
        node.plane = Some(plane);
        node.start_wrapper()?;
        node.wait_ready(Duration::from_secs(120))?;
        node.startup = t0.elapsed();
        Ok(node)
    }

    /// The plane the node belongs to.
    pub fn plane(&self) -> &Plane {
        self.plane.as_ref().expect("a started node has its plane")
    }

    /// The node's folder (logs in `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of the node's logs (containerd, kubelet), for a failure's message.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for name in ["containerd", "kubelet", "import"] {
            let path = self.dir.join("logs").join(format!("{name}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            s.push_str(&format!("--- {} \n", path.display()));
            s.push_str(&all[all.len().saturating_sub(lines)..].join("\n"));
            s.push('\n');
        }
        s
    }

    /// Imports an OCI archive into the node's containerd (`k8s.io`), as
    /// `ctr -n k8s.io images import` does; then tags it `also` too when given.
    pub fn import_image(&self, archive: &Path, also: &[&str]) -> Result<String, NodeError> {
        let out = self.ctr(&[
            "images",
            "import",
            "--all-platforms",
            &archive.display().to_string(),
        ])?;
        // "NAME   saved" for each image it imported
        let name = out
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                let name = w.next()?;
                (w.next() == Some("saved")).then(|| name.to_string())
            })
            .ok_or_else(|| NodeError::Failed(format!("ctr import printed no image name: {out}")))?;
        for tag in also {
            self.ctr(&["images", "tag", "--force", &name, tag])?;
        }
        Ok(name)
    }

    /// `ctr -n k8s.io ARGS` against the node's containerd: its stdout.
    pub fn ctr(&self, args: &[&str]) -> Result<String, NodeError> {
        let out = Command::new(self.bin.join("ctr"))
            .arg("--address")
            .arg(self.dir.join("containerd/containerd.sock"))
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .map_err(failed("running ctr"))?;
        if !out.status.success() {
            return Err(NodeError::Failed(format!(
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn script(&self, name: &str, extra: &[(&str, &str)]) -> Result<(), NodeError> {
        let out = Command::new("sh")
            .arg(self.dir.join(name))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .output()
            .map_err(failed(name))?;
        if !out.status.success() {
            return Err(NodeError::Failed(format!(
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// A `sh` that holds the node lock (its stdout is the lock file), waits for EOF on its
    /// stdin (this process ended, however) and runs `node-down.sh`; the lock is freed only
    /// when it exits, so the next node never meets this one's leftovers.
    fn start_reaper(&mut self) -> Result<(), NodeError> {
        let down = self.dir.join("node-down.sh");
        let script = format!(
            "read _ignored; sh '{}' >/dev/null 2>&1; exit 0",
            down.display().to_string().replace('\'', "'\\''")
        );
        let lock = self._lock.try_clone().map_err(failed("sharing the lock"))?;
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::from(lock))
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(failed("starting the node's reaper"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        self.reaper = Some((child, stdin));
        Ok(())
    }

    fn write_configs(&self, plane: &Plane, runc: &str, cni: &Path) -> Result<(), NodeError> {
        let d = &self.dir;
        let w = |name: &str, text: String| {
            std::fs::write(d.join(name), text).map_err(failed("writing the node's config"))
        };
        w(
            "containerd.toml",
            containerd_config(d, runc, cni, "registry.k8s.io/pause:hashroll"),
        )?;
        w("cni/net.d/10-hashroll.conflist", cni_config(d))?;
        w("kubelet.yaml", kubelet_config(d, plane))?;
        w("resolv.conf", String::new())?;
        // the kubelet's identity, as kubeadm makes it: group system:nodes, bound to the
        // system:node ClusterRole (no Node authorizer on this plane)
        w(
            "kubelet.kubeconfig",
            plane.kubeconfig_for(&format!("system:node:{NODE_NAME}"), "system:nodes")?,
        )?;
        plane.kubectl(&[
            "create",
            "clusterrolebinding",
            "hashroll-harness-nodes",
            "--clusterrole=system:node",
            "--group=system:nodes",
        ])?;
        Ok(())
    }

    fn start_wrapper(&mut self) -> Result<(), NodeError> {
        let log = File::create(self.dir.join("logs/node-run.log"))
            .map_err(failed("creating the node's log"))?;
        let err = log.try_clone().map_err(failed("dup log"))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{NETNS}"))
            .args(["unshare", "--mount", "--propagation", "private", "--", "sh"])
            .arg(self.dir.join("node-run.sh"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(failed("starting containerd and the kubelet"))?;
        self.wrapper = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), NodeError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(w) = self.wrapper.as_mut()
                && let Ok(Some(status)) = w.try_wait()
            {
                return Err(NodeError::Failed(format!(
                    "containerd or the kubelet exited ({status}):\n{}\n{}",
                    std::fs::read_to_string(self.dir.join("logs/node-run.log")).unwrap_or_default(),
                    self.log_tails(30)
                )));
            }
            let ready = self
                .plane()
                .kubectl(&[
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .map(|s| s.trim() == "True")
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(NodeError::Failed(format!(
                    "node {NODE_NAME} not Ready after {}s:\n{}",
                    timeout.as_secs(),
                    self.log_tails(30)
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the node and its plane, leaving nothing (see `node-down.sh`).
    pub fn stop(&mut self) {
        let _ = self.script("node-down.sh", &[]);
        if let Some(mut w) = self.wrapper.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        self.plane = None;
        if let Some((mut child, stdin)) = self.reaper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn containerd_config(dir: &Path, runc: &str, cni: &Path, pause: &str) -> String {
    let d = dir.display();
    // each setting here was a failure before it was set; see real-node.md
    format!(
        r#"version = 3
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{d}/containerd/containerd.sock"

[ttrpc]
  address = "{d}/containerd/containerd.sock.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{pause}"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{d}/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cni}"]
    conf_dir = "{d}/cni/net.d"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#,
        cni = cni.display()
    )
}

fn cni_config(dir: &Path) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "hashroll",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{POD_CIDR}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}],
        "dataDir": "{}/cni/ipam"
      }}
    }}
  ]
}}
"#,
        dir.display()
    )
}

fn kubelet_config(dir: &Path, plane: &Plane) -> String {
    let d = dir.display();
    let ca = plane.dir().join("pki/ca.crt");
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: "{ca}"}}
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://{d}/containerd/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# imported images are the only ones there are: never collect them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
podLogsDir: {d}/pod-logs
resolvConf: {d}/resolv.conf
serializeImagePulls: false
maxPods: 60
protectKernelDefaults: false
"#,
        ca = ca.display()
    )
}
