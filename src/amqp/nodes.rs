//! The broker's nodes. `amqp.url` names one node, or several in oslo.messaging's form
//! `amqp://u:p@h1:5672,u:p@h2:5672,u:p@h3:5672/vhost?heartbeat=10`: each comma-separated
//! authority shares the one path and query. Parsing is pure; the URLs it gives are what lapin
//! connects to.

/// Why `amqp.url` is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amqp.url: {0}")]
pub struct BadBrokerUrl(pub String);

/// One URL per node, in the order given.
pub fn node_urls(url: &str) -> Result<Vec<String>, BadBrokerUrl> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| BadBrokerUrl("expected amqp://user:pass@host:port/vhost".into()))?;
    if scheme != "amqp" && scheme != "amqps" {
        return Err(BadBrokerUrl(format!(
            "scheme '{scheme}' is not amqp or amqps"
        )));
    }
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authorities, tail) = rest.split_at(cut);
    let nodes: Vec<String> = authorities
        .split(',')
        .map(str::trim)
        .map(|authority| {
            if authority.is_empty() || authority.ends_with('@') {
                Err(BadBrokerUrl(format!(
                    "a node without a host in '{}'",
                    display(url)
                )))
            } else {
                Ok(format!("{scheme}://{authority}{tail}"))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(nodes)
}

/// A node's URL without its credentials, for logs: `amqp://h1:5672/vhost`.
pub fn display(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let cut = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(cut);
            let hosts: Vec<&str> = authority
                .split(',')
                .map(|a| a.rsplit_once('@').map_or(a, |(_, host)| host))
                .collect();
            let path = tail.split('?').next().unwrap_or_default();
            format!("{scheme}://{}{path}", hosts.join(","))
        }
        None => "(not a URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_is_kept_as_given() {
        assert_eq!(
            node_urls("amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10").unwrap(),
            ["amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10"]
        );
        assert_eq!(node_urls("amqp://rabbit").unwrap(), ["amqp://rabbit"]);
    }

    #[test]
    fn several_nodes_share_the_vhost_and_the_query() {
        assert_eq!(
            node_urls("amqp://u:p@h1:5672,u:p@h2:5673, v:q@h3/fuel?heartbeat=5").unwrap(),
            [
                "amqp://u:p@h1:5672/fuel?heartbeat=5",
                "amqp://u:p@h2:5673/fuel?heartbeat=5",
                "amqp://v:q@h3/fuel?heartbeat=5",
            ]
        );
        assert_eq!(
            node_urls("amqps://a,b").unwrap(),
            ["amqps://a", "amqps://b"]
        );
    }

    #[test]
    fn malformed_lists_are_refused_without_echoing_passwords() {
        for bad in [
            "amqp://u:secret@h1,,h2/",
            "amqp://u:secret@/",
            "http://h1/",
            "h1:5672",
        ] {
            let err = node_urls(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn display_hides_credentials_and_the_query() {
        assert_eq!(
            display("amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(
            display("amqp://u:p@h1:5672,u:p@h2:5672/fuel"),
            "amqp://h1:5672,h2:5672/fuel"
        );
    }
}
