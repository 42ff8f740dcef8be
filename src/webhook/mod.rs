//! The mutating admission webhook: axum over rustls.

pub mod admit;
mod lane;
pub mod review;
pub mod server;
pub mod tls;

pub use server::{router, serve_tls, serve_tls_until};
