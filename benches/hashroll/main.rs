//! `make bench` (`cargo bench --bench hashroll -- WHAT`): each figure next to a baseline
//! measured in the same run. A bench target, so its dependencies (the harness, hyper's
//! client) are dev-only and the production binary does not carry them.
//!
//! - `webhook`: admission throughput and p50/p99 over TLS with HTTP/1.1 keep-alive against
//!   the webhook server (its own process, the real server code), next to a static endpoint
//!   the bench adds to the same server; saturation (32 connections, closed loop) and a fixed 1,000/s (open loop).
//! - `hostile`: normal reviews at a fixed 1,000/s (p50/p99) alone and while a hostile
//!   tenant's reviews (a thousand missing names, pathological and oversized regexes, a regex
//!   over thousands of long-named sources, maximum-size bodies) arrive at the same time; then
//!   the server's peak RSS under a flood of maximum-size bodies, next to its peak after the
//!   normal load. Then (also alone as `fair`) another namespace's plain reload-list reviews
//!   alone and beside one namespace's flood of costly reload-list reviews on 32 and 128
//!   connections.
//! - `reload`: source write accepted → workload template patched, at 10,000 ConfigMaps and
//!   2,000 Deployments on the local control plane, next to the apiserver's own watch latency
//!   for the source (the floor); `--coalesce-window=0` and the default.
//! - `memory`: peak RSS (VmHWM) of hashroll with 10,000 Secrets of 8 KiB, next to its peak on
//!   an empty cluster.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use hashroll_harness::launch::{Launch, Process};
use hashroll_harness::plane::{Plane, PlaneOptions};
use hashroll_harness::webhook_config::Scope;

mod client;
mod cluster;
mod held;
mod hostile;
mod memory;
mod reload;
mod scale;
mod webhook;
use client::*;
use cluster::*;
use held::*;
use hostile::*;
use memory::*;
use reload::*;
use scale::*;
use webhook::*;

type AnyErr = Box<dyn std::error::Error + Send + Sync>;

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench hashroll -- [all|webhook|hostile|fair|inproc|reload|held|memory|scale|restart] [--quick]"
    );
    std::process::exit(2)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo bench` adds `--bench`
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let what = args.first().map(String::as_str).unwrap_or("all");
    let res: Result<(), AnyErr> = rt.block_on(async {
        match what {
            "serve" => {
                let [_, cert, key, addr] = &args[..] else {
                    usage()
                };
                serve(cert, key, addr).await
            }
            "webhook" => webhook_bench(quick).await,
            "hostile" => hostile_bench(quick).await,
            "fair" => fair_bench(quick).await,
            "inproc" => inproc().await,
            "reload" => reload_bench(quick).await,
            "held" => held_bench(quick).await,
            "memory" => memory_bench(quick).await,
            "scale" => scale_bench(Scale::of(quick)).await,
            "restart" => scale_bench(Scale::Restart).await,
            "all" => {
                webhook_bench(quick).await?;
                hostile_bench(quick).await?;
                reload_bench(quick).await?;
                held_bench(quick).await?;
                memory_bench(quick).await
            }
            _ => usage(),
        }
    });
    if let Err(e) = res {
        eprintln!("hashroll-bench: {e}");
        std::process::exit(1);
    }
}
