//! The mutating admission webhook: axum over rustls.

pub mod admit;
mod fair;
mod lane;
pub mod review;
/// The self-managed serving certificate and the webhook's caBundle.
pub(crate) mod selfcert;
pub(crate) mod server;
pub mod tls;

pub use lane::LaneConfig;
pub use server::{router, router_with, serve_tls, serve_tls_until};
