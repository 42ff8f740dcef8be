//! The verb of a request to the apiserver, for `hashroll_api_requests_total`.

/// The verb of a request to the apiserver, as its audit log names it: the method, and for a
/// GET whether it watches, lists a collection or reads one object.
pub(crate) fn api_verb(method: &http::Method, uri: &http::Uri) -> &'static str {
    let query = uri.query().unwrap_or_default();
    match *method {
        http::Method::GET
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1") =>
        {
            "watch"
        }
        http::Method::GET => {
            // past /api/v1 or /apis/GROUP/VERSION, and past namespaces/NS: RESOURCE lists,
            // RESOURCE/NAME[/SUBRESOURCE] reads one
            let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
            let skip = if segments.first() == Some(&"api") {
                2
            } else {
                3
            };
            let rest = segments.get(skip..).unwrap_or_default();
            let rest = match rest {
                ["namespaces", _, resource @ ..] if !resource.is_empty() => resource,
                _ => rest,
            };
            if rest.len() >= 2 { "get" } else { "list" }
        }
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_verbs_as_the_audit_log_names_them() {
        let cases = [
            ("GET", "/api/v1/namespaces/ns/secrets/s", "get"),
            ("GET", "/api/v1/namespaces/ns/secrets?limit=500", "list"),
            (
                "GET",
                "/api/v1/secrets?watch=true&resourceVersion=1",
                "watch",
            ),
            ("GET", "/api/v1/namespaces/hashroll", "get"),
            ("GET", "/api/v1/namespaces", "list"),
            ("GET", "/apis/apps/v1/namespaces/ns/deployments/web", "get"),
            ("GET", "/apis/apps/v1/deployments", "list"),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/h/leases/l",
                "update",
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/ns/deployments/web",
                "patch",
            ),
            ("POST", "/api/v1/namespaces/ns/events", "create"),
            ("DELETE", "/api/v1/namespaces/ns/pods/p", "delete"),
        ];
        for (method, uri, verb) in cases {
            let m: http::Method = method.parse().unwrap();
            let u: http::Uri = uri.parse().unwrap();
            assert_eq!(super::api_verb(&m, &u), verb, "{method} {uri}");
        }
    }
}
