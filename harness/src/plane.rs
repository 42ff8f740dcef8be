//! A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok (fake nodes), started from the binaries `hack/build-control-plane.sh`
//! builds. The one way the tests and `make demo` start and stop a plane.
//!
//! Everything listens on free loopback ports; logs go to `<dir>/logs`. The processes share
//! one process group. A reaper process holds the read end of a pipe whose write end only
//! this process holds: when this process ends, however it ends (a panic, `exit`, SIGKILL),
//! the reaper kills the whole group, so nothing outlives the run. [`Plane`]'s `Drop` stops
//! everything at once when it runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The versions the control plane is built at (one place: `hack/versions.env`).
pub const VERSIONS: &str = include_str!("../../hack/versions.env");

/// Value of `KEY=value` in `hack/versions.env`.
pub fn version(key: &str) -> &'static str {
    VERSIONS
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .unwrap_or("unknown")
}

/// The build cache every `hack/` script writes to: `$HASHROLL_CACHE`, else
/// `$HOME/.cache/hashroll`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HASHROLL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/hashroll")
        })
}

/// Where `hack/build-control-plane.sh` puts the binaries.
pub fn default_bin_dir() -> PathBuf {
    cache_dir()
        .join("control-plane")
        .join(version("KUBERNETES_VERSION"))
}

#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error("control plane binary {0} not found: run `make control-plane` first")]
    MissingBinary(PathBuf),
    #[error("io error {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{what} did not become ready within {secs}s; logs in {logs}:\n{tail}")]
    NotReady {
        what: String,
        secs: u64,
        logs: String,
        tail: String,
    },
    #[error("{what} exited early ({status}); logs in {logs}:\n{tail}")]
    Exited {
        what: String,
        status: String,
        logs: String,
        tail: String,
    },
    #[error("kubectl {args} failed: {stderr}")]
    Kubectl { args: String, stderr: String },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlaneError {
    let context = context.into();
    move |source| PlaneError::Io { context, source }
}

/// A running control plane. Dropping it stops every process it started.
pub struct Plane {
    dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    bin: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    ca_pem: String,
    ca: (CertificateParams, KeyPair),
    children: Mutex<Vec<(String, Child)>>,
    /// each process's arguments, to start it again ([`Plane::restart`])
    args: Mutex<Vec<(String, Vec<String>)>>,
    pgid: Option<u32>,
    reaper: Option<(Child, ChildStdin)>,
    /// how long `start` took
    pub startup: Duration,
    /// where the apiserver listens
    listen: std::net::Ipv4Addr,
}

/// Options for [`Plane::start`].
#[derive(Debug, Clone, Default)]
pub struct PlaneOptions {
    /// keep state in this folder (kept afterwards); a temp dir otherwise (removed on drop)
    pub dir: Option<PathBuf>,
    /// binaries folder with `bin/` and `stages/`; `default_bin_dir()` otherwise
    pub bin_dir: Option<PathBuf>,
    /// a plane for a real node (see `node.rs`) instead of kwok's fake one: the apiserver
    /// listens on this address (one the harness made, where the node and its pods reach
    /// it), admits pods with service-account tokens, calls webhooks at their endpoints and
    /// reaches the kubelet; the controller manager runs every controller; no kwok
    pub real_node: Option<std::net::Ipv4Addr>,
}

fn free_port() -> Result<u16, PlaneError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(l.local_addr().map_err(io("local_addr"))?.port())
}

fn tail_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn key_pem(k: &KeyPair) -> String {
    k.serialize_pem()
}

/// The plane's binaries folder, once each binary is there.
fn check_binaries(root: &Path) -> Result<PathBuf, PlaneError> {
    let bin = root.join("bin");
    for b in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kwok",
    ] {
        if !bin.join(b).exists() {
            return Err(PlaneError::MissingBinary(bin.join(b)));
        }
    }
    Ok(bin)
}

/// The plane's certificates and keys, written to files, and the admin kubeconfig.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca_file: PathBuf,
    serving_crt: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_pub: PathBuf,
    kubeconfig: PathBuf,
}

impl Pki {
    /// A CA, the apiserver's serving certificate, an admin client certificate and the
    /// service-account key pair, in `pki`; a kubeconfig for `server`.
    /// Also returns the CA, which the plane keeps to issue serving certificates later.
    #[allow(clippy::type_complexity)]
    fn write(
        pki: &Path,
        server: &str,
        listen: std::net::Ipv4Addr,
    ) -> Result<(Pki, (CertificateParams, KeyPair)), PlaneError> {
        std::fs::create_dir_all(pki).map_err(io("creating pki dir"))?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "hashroll-plane-ca");
        ca_params.distinguished_name = dn;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca_params.clone(), &ca_key);

        let serving_key = KeyPair::generate()?;
        let mut sp = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default.svc".to_string(),
        ])?;
        sp.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        sp.subject_alt_names
            .push(SanType::IpAddress([10, 0, 0, 1].into()));
        if !listen.is_loopback() {
            sp.subject_alt_names.push(SanType::IpAddress(listen.into()));
        }
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving = sp.signed_by(&serving_key, &issuer)?;

        let admin_key = KeyPair::generate()?;
        let mut ap = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "admin");
        dn.push(DnType::OrganizationName, "system:masters");
        ap.distinguished_name = dn;
        ap.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin = ap.signed_by(&admin_key, &issuer)?;

        let sa_key = KeyPair::generate()?;
        let write = |name: &str, text: &str| -> Result<PathBuf, PlaneError> {
            let p = pki.join(name);
            std::fs::write(&p, text).map_err(io(format!("writing {}", p.display())))?;
            Ok(p)
        };
        let ca_file = write("ca.crt", &ca_pem)?;
        let serving_crt = write("apiserver.crt", &serving.pem())?;
        let serving_key_f = write("apiserver.key", &key_pem(&serving_key))?;
        let sa_key_f = write("sa.key", &key_pem(&sa_key))?;
        let sa_pub_f = write("sa.pub", &sa_key.public_key_pem())?;

        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let kubeconfig_text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hashroll-plane\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: hashroll-plane\n  context:\n    cluster: hashroll-plane\n    user: admin\ncurrent-context: hashroll-plane\n",
            b64(&ca_pem),
            b64(&admin.pem()),
            b64(&key_pem(&admin_key)),
        );
        let kubeconfig = write("kubeconfig", &kubeconfig_text)?;

        let pki = Pki {
            dir: pki.to_path_buf(),
            ca_pem,
            ca_file,
            serving_crt,
            serving_key: serving_key_f,
            sa_key: sa_key_f,
            sa_pub: sa_pub_f,
            kubeconfig,
        };
        Ok((pki, (ca_params, ca_key)))
    }
}

impl Plane {
    /// Starts a plane and waits until the apiserver is ready and the fake node is Ready.
    /// A free port can be taken by someone else between choosing and binding it: a start
    /// that fails that way is retried with new ports.
    pub fn start(opts: PlaneOptions) -> Result<Plane, PlaneError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(opts.clone()) {
                Err(PlaneError::Exited { tail, .. } | PlaneError::NotReady { tail, .. })
                    if attempt < 4 && tail.contains("address already in use") =>
                {
                    eprintln!("control plane: a port was taken meanwhile; starting again");
                }
                other => return other,
            }
        }
    }

    fn start_once(opts: PlaneOptions) -> Result<Plane, PlaneError> {
        let t0 = Instant::now();
        let root = opts.bin_dir.unwrap_or_else(default_bin_dir);
        let bin = check_binaries(&root)?;
        let (tempdir, dir) = match opts.dir {
            Some(d) => {
                std::fs::create_dir_all(&d).map_err(io("creating plane dir"))?;
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("hashroll-plane-")
                    .tempdir()
                    .map_err(io("creating temp dir"))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        std::fs::create_dir_all(dir.join("logs")).map_err(io("creating logs dir"))?;
        let etcd_port = free_port()?;
        let api_port = free_port()?;
        let listen = opts.real_node.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        let server = format!("https://{listen}:{api_port}");
        let (pki, ca) = Pki::write(&dir.join("pki"), &server, listen)?;
        let mut plane = Plane {
            dir: dir.clone(),
            _tempdir: tempdir,
            bin,
            kubeconfig: pki.kubeconfig.clone(),
            server,
            ca_pem: pki.ca_pem.clone(),
            ca,
            children: Mutex::new(Vec::new()),
            args: Mutex::new(Vec::new()),
            pgid: None,
            reaper: None,
            startup: Duration::ZERO,
            listen,
        };
        let etcd_url = plane.start_etcd(etcd_port)?;
        plane.start_apiserver(&etcd_url, api_port, &pki, opts.real_node.is_some())?;
        if opts.real_node.is_some() {
            plane.start_controllers_for_node(&pki)?;
        } else {
            plane.start_controllers(&root.join("stages"))?;
            plane.add_fake_node()?;
        }
        plane.startup = t0.elapsed();
        Ok(plane)
    }

    fn start_etcd(&mut self, port: u16) -> Result<String, PlaneError> {
        let etcd_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let data_dir = self.dir.join("etcd");
        self.spawn(
            "etcd",
            &[
                "--name=default".into(),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
                "--quota-backend-bytes=8589934592".into(),
            ],
        )?;
        self.wait_tcp("etcd", port, Duration::from_secs(30))?;
        Ok(etcd_url)
    }

    fn start_apiserver(
        &mut self,
        etcd_url: &str,
        port: u16,
        pki: &Pki,
        real_node: bool,
    ) -> Result<(), PlaneError> {
        let listen = self.listen;
        let mut args: Vec<String> = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={port}"),
            format!("--bind-address={listen}"),
            format!("--advertise-address={listen}"),
            "--endpoint-reconciler-type=none".into(),
            format!("--cert-dir={}", pki.dir.display()),
            format!("--tls-cert-file={}", pki.serving_crt.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_file.display()),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", pki.sa_pub.display()),
            format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            "--v=1".into(),
        ];
        if real_node {
            // pods get their service-account token; webhooks are called at the endpoint's
            // pod IP (no kube-proxy on this machine); exec and logs reach the kubelet
            let (crt, key) =
                self.client_cert(pki, "kube-apiserver-kubelet-client", "system:masters")?;
            args.extend([
                "--enable-aggregator-routing=true".into(),
                // the node's address, never its name: no DNS lookup leaves this machine
                "--kubelet-preferred-address-types=InternalIP".into(),
                format!("--kubelet-client-certificate={}", crt.display()),
                format!("--kubelet-client-key={}", key.display()),
            ]);
        } else {
            args.push("--disable-admission-plugins=ServiceAccount,TaintNodesByCondition".into());
        }
        self.spawn("kube-apiserver", &args)?;
        self.wait_ready(Duration::from_secs(90))
    }

    /// A client certificate of the plane's CA for `cn` in group `org`, written to `pki`.
    fn client_cert(
        &self,
        pki: &Pki,
        cn: &str,
        org: &str,
    ) -> Result<(PathBuf, PathBuf), PlaneError> {
        let (cert, key) = self.issue_client_cert(cn, org)?;
        let crt_path = pki.dir.join(format!("{cn}.crt"));
        let key_path = pki.dir.join(format!("{cn}.key"));
        std::fs::write(&crt_path, cert).map_err(io("writing a client certificate"))?;
        std::fs::write(&key_path, key).map_err(io("writing a client key"))?;
        Ok((crt_path, key_path))
    }

    /// Signs a client certificate (CN `cn`, O `org`) with the plane's CA: (cert, key) PEM.
    pub fn issue_client_cert(&self, cn: &str, org: &str) -> Result<(String, String), PlaneError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, org);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = Issuer::new(self.ca.0.clone(), &self.ca.1);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A kubeconfig for this plane with a client certificate (CN `cn`, O `org`).
    pub fn kubeconfig_for(&self, cn: &str, org: &str) -> Result<String, PlaneError> {
        let (cert, key) = self.issue_client_cert(cn, org)?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        Ok(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hashroll-plane\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: {cn}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: hashroll-plane\n  context:\n    cluster: hashroll-plane\n    user: {cn}\ncurrent-context: hashroll-plane\n",
            self.server,
            b64(&self.ca_pem),
            b64(&cert),
            b64(&key),
        ))
    }

    /// The controllers of a real cluster (every one, as kubeadm runs them: endpoints for
    /// Services, the root CA ConfigMap for service-account tokens, disruption for PDBs,
    /// node lifecycle), and the scheduler.
    fn start_controllers_for_node(&mut self, pki: &Pki) -> Result<(), PlaneError> {
        let kc = format!("--kubeconfig={}", self.kubeconfig.display());
        self.spawn(
            "kube-controller-manager",
            &[
                kc.clone(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--controllers=*".into(),
                format!("--root-ca-file={}", pki.ca_file.display()),
                format!(
                    "--service-account-private-key-file={}",
                    pki.sa_key.display()
                ),
                "--use-service-account-credentials=false".into(),
                "--v=1".into(),
            ],
        )?;
        self.spawn(
            "kube-scheduler",
            &[
                kc,
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--v=1".into(),
            ],
        )?;
        Ok(())
    }

    /// kube-controller-manager, kube-scheduler and kwok (which runs the pods).
    fn start_controllers(&mut self, stages: &Path) -> Result<(), PlaneError> {
        let kc = format!("--kubeconfig={}", self.kubeconfig.display());
        self.spawn(
            "kube-controller-manager",
            &[
                kc.clone(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--controllers=deployment-controller,replicaset-controller,daemonset-controller,statefulset-controller,job-controller,cronjob-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,clusterrole-aggregation-controller".into(),
                "--concurrent-deployment-syncs=10".into(),
                "--concurrent-replicaset-syncs=10".into(),
                "--v=1".into(),
            ],
        )?;
        self.spawn(
            "kube-scheduler",
            &[
                kc.clone(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--v=1".into(),
            ],
        )?;
        let mut kwok_args = vec![
            kc.clone(),
            "--manage-all-nodes=true".into(),
            format!("--server-address=127.0.0.1:{}", free_port()?),
        ];
        for s in [
            "node-initialize.yaml",
            "pod-ready.yaml",
            "pod-complete.yaml",
            "pod-delete.yaml",
        ] {
            kwok_args.push(format!("--config={}", stages.join(s).display()));
        }
        self.spawn("kwok", &kwok_args)?;
        Ok(())
    }

    /// One kwok node that takes every pod.
    fn add_fake_node(&self) -> Result<(), PlaneError> {
        let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: kwok-node-0\n  annotations:\n    kwok.x-k8s.io/node: fake\n  labels:\n    kubernetes.io/hostname: kwok-node-0\n    kubernetes.io/os: linux\n    type: kwok\nstatus:\n  allocatable:\n    cpu: \"64\"\n    memory: 256Gi\n    pods: \"1000\"\n  capacity:\n    cpu: \"64\"\n    memory: 256Gi\n    pods: \"1000\"\n";
        self.kubectl_stdin(&["apply", "-f", "-"], node)?;
        self.wait_until("the fake node Ready", Duration::from_secs(60), |p| {
            p.kubectl(&[
                "get",
                "node",
                "kwok-node-0",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .map(|s| s.trim() == "True")
            .unwrap_or(false)
        })
    }

    /// Kills one of the plane's processes (kill -9) and starts it again with the same
    /// arguments; for kube-apiserver, waits until it is ready again. Every watch on the
    /// apiserver is cut: what the chaos soak does to hashroll.
    pub fn restart(&self, name: &str) -> Result<(), PlaneError> {
        let args = self
            .args
            .lock()
            .expect("args lock")
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .ok_or_else(|| PlaneError::Io {
                context: format!("no plane process {name}"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
        {
            let mut children = self.children.lock().expect("children lock");
            if let Some(i) = children.iter().position(|(n, _)| n == name) {
                let (_, mut child) = children.remove(i);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let child = self.command(name, &args, true)?;
        self.children
            .lock()
            .expect("children lock")
            .push((name.to_string(), child));
        if name == "kube-apiserver" {
            self.wait_ready(Duration::from_secs(90))?;
        }
        Ok(())
    }

    /// Starts process `name` of the plane (output to its log, appended when `append`).
    fn command(&self, name: &str, args: &[String], append: bool) -> Result<Child, PlaneError> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&log)
            .map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("dup log file"))?;
        let mut cmd = Command::new(self.bin.join(name));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.dir)
            .process_group(self.pgid.map(|p| p as i32).unwrap_or(0));
        cmd.spawn().map_err(io(format!("starting {name}")))
    }

    fn spawn(&mut self, name: &str, args: &[String]) -> Result<(), PlaneError> {
        self.args
            .lock()
            .expect("args lock")
            .push((name.to_string(), args.to_vec()));
        let child = self.command(name, args, false)?;
        if self.pgid.is_none() {
            self.pgid = Some(child.id());
            self.start_reaper(child.id())?;
        }
        self.children
            .lock()
            .expect("children lock")
            .push((name.to_string(), child));
        Ok(())
    }

    /// A `sh` that waits for EOF on its stdin, then kills the process group and, for a
    /// plane in a temporary directory, removes its etcd data (about 130 MB each: a plane is
    /// held in a static by the tests, so the directory's own `Drop` never runs, and `make
    /// test` left some 20 behind per run until the disk was full). The logs stay for a
    /// failure's reader.
    fn start_reaper(&mut self, pgid: u32) -> Result<(), PlaneError> {
        let cleanup = if self._tempdir.is_some() {
            let etcd = self
                .dir
                .join("etcd")
                .display()
                .to_string()
                .replace('\'', "'\\''");
            format!("rm -rf -- '{etcd}'; ")
        } else {
            String::new()
        };
        let script = format!(
            "read _ignored; kill -s TERM -- -{pgid} 2>/dev/null; sleep 2; kill -s KILL -- -{pgid} 2>/dev/null; {cleanup}exit 0"
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io("starting the reaper"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        self.reaper = Some((child, stdin));
        Ok(())
    }

    fn check_alive(&self) -> Result<(), PlaneError> {
        for (name, child) in self.children.lock().expect("children lock").iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.dir.join("logs").join(format!("{name}.log"));
                return Err(PlaneError::Exited {
                    what: name.clone(),
                    status: status.to_string(),
                    logs: self.dir.join("logs").display().to_string(),
                    tail: tail_file(&log, 30),
                });
            }
        }
        Ok(())
    }

    fn not_ready(&self, what: &str, timeout: Duration, log: &str) -> PlaneError {
        PlaneError::NotReady {
            what: what.to_string(),
            secs: timeout.as_secs(),
            logs: self.dir.join("logs").display().to_string(),
            tail: tail_file(&self.dir.join("logs").join(format!("{log}.log")), 30),
        }
    }

    fn wait_tcp(&self, what: &str, port: u16, timeout: Duration) -> Result<(), PlaneError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.check_alive()?;
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.not_ready(what, timeout, what))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), PlaneError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.check_alive()?;
            if let Ok(out) = self.kubectl(&["get", "--raw", "/readyz"])
                && out.trim() == "ok"
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(self.not_ready("kube-apiserver /readyz", timeout, "kube-apiserver"))
    }

    /// Polls `cond` every 200 ms until it holds or `timeout` passes.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Plane) -> bool,
    ) -> Result<(), PlaneError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.check_alive()?;
            if cond(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(self.not_ready(what, timeout, "kwok"))
    }

    /// Runs the plane's kubectl with the admin kubeconfig; stdout on success.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, PlaneError> {
        self.kubectl_stdin(args, "")
    }

    /// Same as [`Plane::kubectl`], feeding `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<String, PlaneError> {
        let mut child = Command::new(self.bin.join("kubectl"))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("starting kubectl"))?;
        // written from a thread: kubectl prints while it reads, and a large input would
        // fill its output pipe while we still write (each side waiting for the other)
        let writer = child.stdin.take().map(|mut stdin| {
            let input = input.to_string();
            std::thread::spawn(move || stdin.write_all(input.as_bytes()))
        });
        let out = child.wait_with_output().map_err(io("running kubectl"))?;
        // a kubectl that failed may have stopped reading: its error says more than ours
        let written = writer.map(|w| w.join().unwrap_or(Ok(())));
        if out.status.success() {
            if let Some(w) = written {
                w.map_err(io("writing to kubectl"))?;
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(PlaneError::Kubectl {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
    /// `https://127.0.0.1:PORT`
    pub fn server(&self) -> &str {
        &self.server
    }
    /// The plane's folder (logs under `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The folder of the binaries (kubectl and friends).
    pub fn bin(&self) -> &Path {
        &self.bin
    }
    /// PEM of the CA that signed the apiserver's serving cert and the admin client cert.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
    /// Pids of the processes the plane started, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .lock()
            .expect("children lock")
            .iter()
            .map(|(n, c)| (n.clone(), c.id()))
            .collect()
    }

    /// Starts `cmd` in the plane's process group, so it is stopped with the plane, even
    /// when this process dies without cleaning up.
    pub fn spawn_in_group(&self, cmd: &mut Command) -> Result<Child, PlaneError> {
        if let Some(pgid) = self.pgid {
            cmd.process_group(pgid as i32);
        }
        cmd.spawn()
            .map_err(io("starting a process in the plane's group"))
    }

    /// Signs a serving certificate for `sans` with the plane's CA: (cert PEM, key PEM).
    /// What a webhook needs to be called by this apiserver.
    pub fn issue_serving_cert(&self, sans: &[&str]) -> Result<(String, String), PlaneError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        for s in sans {
            match s.parse::<std::net::IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => params
                    .subject_alt_names
                    .push(SanType::DnsName((*s).try_into()?)),
            }
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = Issuer::new(self.ca.0.clone(), &self.ca.1);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The last lines of each process's log, for a failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for (name, _) in self.children.lock().expect("children lock").iter() {
            let _ = writeln!(
                s,
                "--- {name} ({})",
                self.dir.join("logs").join(format!("{name}.log")).display()
            );
            let _ = writeln!(
                s,
                "{}",
                tail_file(&self.dir.join("logs").join(format!("{name}.log")), lines)
            );
        }
        s
    }

    /// Stops every process the plane started (TERM, then KILL after 5 s).
    pub fn stop(&mut self) {
        if let Some(pgid) = self.pgid {
            signal_group("TERM", pgid);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for (_, child) in children.iter_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pgid) = self.pgid.take() {
            signal_group("KILL", pgid);
        }
        children.clear();
        drop(children);
        if let Some((mut child, stdin)) = self.reaper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to process group `pgid`. The `-s SIG -- -PGID` form matters: procps'
/// `kill -TERM -12345` reads `-12345` as an option and signals process group 1 (everything).
fn signal_group(signal: &str, pgid: u32) {
    if pgid <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Plane {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_group_hits_that_group_and_nothing_else() {
        let mut target = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let mut bystander = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        signal_group("TERM", target.id());
        let status = target.wait().unwrap();
        assert!(!status.success(), "the group's process was signalled");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "another group is untouched"
        );
        let _ = bystander.kill();
        let _ = bystander.wait();
    }

    #[test]
    fn versions_come_from_the_one_file() {
        assert!(version("KUBERNETES_VERSION").starts_with("v1."));
        assert_eq!(version("NOPE"), "unknown");
    }
}
