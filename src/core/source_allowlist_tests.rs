use serde_json::json;

use super::*;

fn fuel_master() -> SourcePrefixes {
    SourcePrefixes::parse(&[
        "rsync://10.20.0.2:/puppet/".to_string(),
        "http://10.20.0.2:8080/".to_string(),
    ])
    .expect("valid prefixes")
}

#[test]
fn sources_below_a_prefix_are_allowed() {
    let p = fuel_master();
    for source in [
        "rsync://10.20.0.2:/puppet/manifests/",
        "rsync://10.20.0.2/puppet/2014.1.1-5.1/modules/",
        "http://10.20.0.2:8080/ubuntu/fuelweb/x86_64",
        "HTTP://10.20.0.2:8080/centos/",
        "http://10.20.0.2:8080/a/../centos/",
    ] {
        assert!(p.allows(source), "{source} should be allowed");
    }
}

#[test]
fn look_alike_sources_are_refused() {
    let p = fuel_master();
    for source in [
        "rsync://10.6.6.6:/puppet/manifests/",
        "rsync://10.20.0.2:/puppetx/manifests/",
        "rsync://10.20.0.2:/puppet/../etc/",
        "rsync://10.20.0.2:/puppet/%2e%2e/etc/",
        "rsync://10.20.0.2:873/elsewhere/",
        "http://10.20.0.2.evil.example:8080/",
        "http://10.20.0.2:8080@evil.example/ubuntu",
        "http://user@10.20.0.2:8080/ubuntu",
        "http://10.20.0.2:8081/ubuntu",
        "http://10.20.0.2/ubuntu",
        "https://10.20.0.2:8080/ubuntu",
        "ftp://10.20.0.2:8080/",
        "not a url",
        "",
    ] {
        assert!(!p.allows(source), "{source} should be refused");
    }
}

#[test]
fn a_prefix_without_a_trailing_slash_matches_whole_segments() {
    let p = SourcePrefixes::parse(&["http://mirror.example/fuel".to_string()]).unwrap();
    assert!(p.allows("http://mirror.example/fuel"));
    assert!(p.allows("http://mirror.example/fuel/ubuntu"));
    assert!(!p.allows("http://mirror.example/fuel-evil/ubuntu"));
}

#[test]
fn check_names_the_field_outside_the_list() {
    let p = fuel_master();
    let repos = json!({"nailgun": "http://10.20.0.2:8080/ubuntu precise main",
                       "extra": "http://evil.example/ubuntu precise main"});
    let repos = repos.as_object().unwrap();
    let err = p
        .check(StoredSources {
            repo_metadata: repos,
            puppet_modules_source: "",
            puppet_manifests_source: "",
        })
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Invalid { field, .. } if field == "repo_metadata.extra"),
        "{err}"
    );

    let good = json!({"nailgun": "http://10.20.0.2:8080/ubuntu precise main"});
    let err = p
        .check(StoredSources {
            repo_metadata: good.as_object().unwrap(),
            puppet_modules_source: "rsync://10.20.0.2:/puppet/modules/",
            puppet_manifests_source: "rsync://evil.example/manifests/",
        })
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Invalid { field, .. } if field == "puppet_manifests_source"),
        "{err}"
    );
    assert!(err.to_string().contains("allowed_source_prefixes"), "{err}");

    let empty = Map::new();
    p.check(StoredSources {
        repo_metadata: &empty,
        puppet_modules_source: "",
        puppet_manifests_source: "",
    })
    .expect("absent sources are left to the master's defaults, checked at cast time");
}

#[test]
fn a_prefix_must_be_a_url_with_a_host() {
    for bad in ["10.20.0.2", "file:///etc/", "rsync://"] {
        assert!(
            SourcePrefixes::parse(&[bad.to_string()]).is_err(),
            "{bad} should be refused"
        );
    }
}

#[test]
fn a_huge_source_is_quoted_short() {
    let p = fuel_master();
    let huge = format!("rsync://evil.example/{}", "a".repeat(100_000));
    let err = p
        .check(StoredSources {
            repo_metadata: &Map::new(),
            puppet_modules_source: &huge,
            puppet_manifests_source: "",
        })
        .unwrap_err();
    assert!(err.to_string().len() < 1000);
}
