//! `hashroll-plane`: starts the local control plane the tests use, for `make demo` and for
//! poking around by hand (stops everything on Ctrl-C / SIGTERM); prints the webhook
//! configuration that registers a hashroll at a URL.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use hashroll_harness::node::{NodeError, RealNode};
use hashroll_harness::plane::{Plane, PlaneOptions, version};
use hashroll_harness::webhook_config::{Scope, WebhookConfig};

fn usage() -> ExitCode {
    eprintln!(
        "usage: hashroll-plane up [--dir DIR] [--ready-file FILE]\n       hashroll-plane node-up [--ready-file FILE] [--import OCI-ARCHIVE]...  (exit 3: this machine cannot run a real node)\n       hashroll-plane versions\n       hashroll-plane webhook-config --url URL --ca-file FILE [--name NAME]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("versions") => {
            println!(
                "kubernetes {}  etcd {}  kwok {}",
                version("KUBERNETES_VERSION"),
                version("ETCD_VERSION"),
                version("KWOK_VERSION")
            );
            ExitCode::SUCCESS
        }
        Some("webhook-config") => {
            let (mut url, mut ca_file, mut name) = (None, None, "hashroll".to_string());
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match (a.as_str(), it.next()) {
                    ("--url", Some(u)) => url = Some(u.clone()),
                    ("--ca-file", Some(f)) => ca_file = Some(PathBuf::from(f)),
                    ("--name", Some(n)) => name = n.clone(),
                    _ => return usage(),
                }
            }
            let (Some(url), Some(ca_file)) = (url, ca_file) else {
                return usage();
            };
            let ca = match std::fs::read_to_string(&ca_file) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("hashroll-plane: cannot read {}: {e}", ca_file.display());
                    return ExitCode::from(1);
                }
            };
            let cfg = WebhookConfig {
                name: &name,
                url: &url,
                ca_pem: Some(&ca),
                scope: Scope::AllButSystem,
            };
            print!("{}", cfg.yaml());
            ExitCode::SUCCESS
        }
        Some("node-up") => {
            let (mut ready_file, mut imports) = (None, Vec::new());
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match (a.as_str(), it.next()) {
                    ("--ready-file", Some(f)) => ready_file = Some(PathBuf::from(f)),
                    ("--import", Some(f)) => imports.push(PathBuf::from(f)),
                    _ => return usage(),
                }
            }
            let node = match RealNode::start() {
                Ok(n) => n,
                Err(NodeError::Unsupported(reason)) => {
                    eprintln!("hashroll-plane: no real node on this machine: {reason}");
                    return ExitCode::from(3);
                }
                Err(e) => {
                    eprintln!("hashroll-plane: {e}");
                    return ExitCode::from(1);
                }
            };
            for archive in &imports {
                match node.import_image(archive, &[]) {
                    Ok(name) => println!("  imported {name}"),
                    Err(e) => {
                        eprintln!("hashroll-plane: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            println!(
                "control plane and real node up in {:.1}s: {}\n  kubeconfig: {}\n  logs: {} and {}",
                node.startup.as_secs_f64(),
                node.plane().server(),
                node.plane().kubeconfig().display(),
                node.plane().dir().join("logs").display(),
                node.dir().join("logs").display()
            );
            serve(ready_file, node.plane().kubeconfig())
        }
        Some("up") => {
            let mut opts = PlaneOptions::default();
            let mut ready_file = None;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match (a.as_str(), it.next()) {
                    ("--dir", Some(d)) => opts.dir = Some(PathBuf::from(d)),
                    ("--ready-file", Some(f)) => ready_file = Some(PathBuf::from(f)),
                    _ => return usage(),
                }
            }
            let plane = match Plane::start(opts) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("hashroll-plane: {e}");
                    return ExitCode::from(1);
                }
            };
            println!(
                "control plane up in {:.1}s: {}\n  kubeconfig: {}\n  logs: {}",
                plane.startup.as_secs_f64(),
                plane.server(),
                plane.kubeconfig().display(),
                plane.dir().join("logs").display()
            );
            let code = serve(ready_file, plane.kubeconfig());
            drop(plane);
            code
        }
        _ => usage(),
    }
}

/// Writes the kubeconfig's path to `ready_file`, then waits for Ctrl-C or SIGTERM.
fn serve(ready_file: Option<PathBuf>, kubeconfig: &std::path::Path) -> ExitCode {
    if let Some(f) = ready_file
        && let Err(e) = std::fs::write(&f, kubeconfig.display().to_string())
    {
        eprintln!("hashroll-plane: cannot write {}: {e}", f.display());
        return ExitCode::from(1);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    println!("control plane stopped");
    ExitCode::SUCCESS
}
