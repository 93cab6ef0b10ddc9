use serde_json::json;

use super::*;

/// Nailgun 5.1's `settings.yaml` defaults.
fn nailgun_templates() -> SourceTemplates {
    SourceTemplates {
        repo_ubuntu: "http://{master_ip}:8080/ubuntu/fuelweb/x86_64 precise main".into(),
        repo_centos: "http://{master_ip}:8080/centos/fuelweb/x86_64".into(),
        puppet_modules: "rsync://{master_ip}:/puppet/modules/".into(),
        puppet_manifests: "rsync://{master_ip}:/puppet/manifests/".into(),
    }
}

fn master(ip: Option<&str>) -> Master {
    Master {
        ip: ip.map(String::from),
        templates: nailgun_templates(),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

const OWN_REPO: &str = "http://10.20.0.2:8080/2014.1.1-5.0.2/ubuntu/x86_64 precise main";
const OWN_MODULES: &str = "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/modules/";
const OWN_MANIFESTS: &str = "rsync://10.20.0.2:/puppet/2014.1.1-5.0.2/manifests/";

fn stored<'a>(
    repos: &'a Map<String, Value>,
    modules: &'a str,
    manifests: &'a str,
) -> StoredSources<'a> {
    StoredSources {
        repo_metadata: repos,
        puppet_modules_source: modules,
        puppet_manifests_source: manifests,
    }
}

fn invalid_of(result: Result<impl std::fmt::Debug, SourceError>) -> (String, String) {
    match result {
        Err(SourceError::Invalid { field, problem }) => (field, problem),
        other => panic!("expected an invalid source, got {other:?}"),
    }
}

#[test]
fn a_release_with_every_source_keeps_its_own_even_without_a_master() {
    let repos = object(json!({"nailgun": OWN_REPO}));
    for ip in [None, Some("10.20.0.2")] {
        let sources = resolve(
            OperatingSystem::Ubuntu,
            "2014.1.1-5.0.2",
            stored(&repos, OWN_MODULES, OWN_MANIFESTS),
            &master(ip),
        )
        .expect("own sources");
        assert_eq!(sources.repo_metadata, repos);
        assert_eq!(sources.puppet_modules_source, OWN_MODULES);
        assert_eq!(sources.puppet_manifests_source, OWN_MANIFESTS);
    }
}

#[test]
fn a_release_without_sources_gets_nailgun_5_1_defaults_for_its_os() {
    let none = Map::new();
    let ubuntu = resolve(
        OperatingSystem::Ubuntu,
        "2014.1-5.0",
        stored(&none, "", ""),
        &master(Some("10.20.0.2")),
    )
    .unwrap();
    assert_eq!(
        Value::Object(ubuntu.repo_metadata),
        json!({"nailgun": "http://10.20.0.2:8080/ubuntu/fuelweb/x86_64 precise main"})
    );
    assert_eq!(
        ubuntu.puppet_modules_source,
        "rsync://10.20.0.2:/puppet/modules/"
    );
    assert_eq!(
        ubuntu.puppet_manifests_source,
        "rsync://10.20.0.2:/puppet/manifests/"
    );
    let centos = resolve(
        OperatingSystem::CentOS,
        "2014.1-5.0",
        stored(&none, "", ""),
        &master(Some("10.20.0.2")),
    )
    .unwrap();
    assert_eq!(
        Value::Object(centos.repo_metadata),
        json!({"nailgun": "http://10.20.0.2:8080/centos/fuelweb/x86_64"})
    );
    assert_eq!(
        centos.puppet_modules_source,
        "rsync://10.20.0.2:/puppet/modules/"
    );
}

#[test]
fn each_missing_field_falls_back_on_its_own() {
    let repos = object(json!({"nailgun": OWN_REPO}));
    let none = Map::new();
    let m = master(Some("10.20.0.2"));
    let only_repo = resolve(OperatingSystem::Ubuntu, "v", stored(&repos, "", ""), &m).unwrap();
    assert_eq!(only_repo.repo_metadata, repos);
    assert_eq!(
        only_repo.puppet_modules_source,
        "rsync://10.20.0.2:/puppet/modules/"
    );
    let only_manifests = resolve(
        OperatingSystem::Ubuntu,
        "v",
        stored(&none, "", OWN_MANIFESTS),
        &m,
    )
    .unwrap();
    assert_eq!(
        Value::Object(only_manifests.repo_metadata),
        json!({"nailgun": "http://10.20.0.2:8080/ubuntu/fuelweb/x86_64 precise main"})
    );
    assert_eq!(
        only_manifests.puppet_modules_source,
        "rsync://10.20.0.2:/puppet/modules/"
    );
    assert_eq!(only_manifests.puppet_manifests_source, OWN_MANIFESTS);
}

#[test]
fn without_a_master_the_refusal_names_exactly_the_missing_fields() {
    let repos = object(json!({"nailgun": OWN_REPO}));
    let none = Map::new();
    let cases: [(StoredSources<'_>, Vec<SourceField>); 3] = [
        (
            stored(&none, "", ""),
            vec![
                SourceField::RepoMetadata,
                SourceField::PuppetModulesSource,
                SourceField::PuppetManifestsSource,
            ],
        ),
        (
            stored(&repos, "", OWN_MANIFESTS),
            vec![SourceField::PuppetModulesSource],
        ),
        (
            stored(&none, OWN_MODULES, OWN_MANIFESTS),
            vec![SourceField::RepoMetadata],
        ),
    ];
    for (sources, missing) in cases {
        let err = resolve(OperatingSystem::Ubuntu, "v", sources, &master(None)).unwrap_err();
        assert_eq!(err, SourceError::Missing(missing.clone()));
        let text = err.to_string();
        for field in &missing {
            assert!(text.contains(field.as_str()), "{text}");
        }
        assert!(text.contains("[master] ip"), "{text}");
    }
}

#[test]
fn the_version_placeholder_takes_the_deployed_release_version() {
    let none = Map::new();
    let m = Master {
        ip: Some("10.20.0.2".into()),
        templates: SourceTemplates {
            repo_ubuntu: "http://{master_ip}:8080/{version}/ubuntu/x86_64 precise main".into(),
            repo_centos: "http://{master_ip}:8080/{version}/centos/x86_64".into(),
            puppet_modules: "rsync://{master_ip}:/puppet/{version}/modules/".into(),
            puppet_manifests: "rsync://{master_ip}:/puppet/{version}/manifests/".into(),
        },
    };
    m.validate().unwrap();
    let sources = resolve(
        OperatingSystem::Ubuntu,
        "2014.1.1-5.1",
        stored(&none, "", ""),
        &m,
    )
    .unwrap();
    assert_eq!(
        sources.repo_metadata["nailgun"],
        "http://10.20.0.2:8080/2014.1.1-5.1/ubuntu/x86_64 precise main"
    );
    assert_eq!(
        sources.puppet_modules_source,
        "rsync://10.20.0.2:/puppet/2014.1.1-5.1/modules/"
    );
    assert_eq!(
        sources.puppet_manifests_source,
        "rsync://10.20.0.2:/puppet/2014.1.1-5.1/manifests/"
    );
    // A version that cannot stand in a URL is refused, not cast.
    let (field, problem) = invalid_of(resolve(
        OperatingSystem::Ubuntu,
        "2014 beta",
        stored(&none, OWN_MODULES, OWN_MANIFESTS),
        &m,
    ));
    assert_eq!(field, "repo_metadata.nailgun");
    assert!(problem.contains("'2014 beta'"), "{problem}");
    let repos = object(json!({"nailgun": OWN_REPO}));
    let (field, _) = invalid_of(resolve(
        OperatingSystem::Ubuntu,
        "2014/beta",
        stored(&repos, "", OWN_MANIFESTS),
        &m,
    ));
    assert_eq!(field, "puppet_modules_source");
    // Templates without `{version}` take any version.
    resolve(
        OperatingSystem::Ubuntu,
        "2014 beta",
        stored(&none, "", ""),
        &master(Some("10.20.0.2")),
    )
    .unwrap();
}

#[test]
fn stored_sources_that_astute_cannot_use_are_refused_at_cast_time_too() {
    let repos = object(json!({"nailgun": OWN_REPO}));
    let (field, problem) = invalid_of(resolve(
        OperatingSystem::Ubuntu,
        "v",
        stored(&repos, "ftp://10.20.0.2/puppet/modules/", OWN_MANIFESTS),
        &master(Some("10.20.0.2")),
    ));
    assert_eq!(field, "puppet_modules_source");
    assert!(
        problem.contains("rsync://") && problem.contains("ftp"),
        "{problem}"
    );
}

#[test]
fn puppet_sources_must_be_rsync_urls_with_a_host() {
    let none = Map::new();
    for ok in [
        "rsync://10.20.0.2:/puppet/modules/",
        "rsync://master.domain.tld/puppet/2014.1-5.0/modules/",
        "rsync://10.20.0.2:873/puppet/modules/",
    ] {
        validate_stored(OperatingSystem::Ubuntu, stored(&none, ok, ok)).unwrap();
    }
    for (bad, says) in [
        ("http://10.20.0.2/puppet/modules/", "not 'http://'"),
        ("https://10.20.0.2/puppet/modules/", "not 'https://'"),
        ("/etc/puppet/modules", "not a URL"),
        ("10.20.0.2:/puppet/modules/", "rsync://"),
        ("rsync:///puppet/modules/", "host"),
        ("rsync://10.20.0.2:/puppet/my modules/", "without spaces"),
        ("   ", "blank"),
    ] {
        for (modules, manifests, field) in [
            (bad, OWN_MANIFESTS, "puppet_modules_source"),
            (OWN_MODULES, bad, "puppet_manifests_source"),
        ] {
            let (named, problem) = invalid_of(validate_stored(
                OperatingSystem::Ubuntu,
                stored(&none, modules, manifests),
            ));
            assert_eq!(named, field, "{bad}");
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }
    let long = format!("rsync://10.20.0.2:/{}", "x".repeat(MAX_SOURCE_CHARS));
    let (_, problem) = invalid_of(validate_stored(
        OperatingSystem::Ubuntu,
        stored(&none, &long, ""),
    ));
    assert!(problem.contains("longer"), "{problem}");
}

#[test]
fn absent_sources_are_valid_at_registration() {
    let none = Map::new();
    for os in [OperatingSystem::Ubuntu, OperatingSystem::CentOS] {
        validate_stored(os, stored(&none, "", "")).unwrap();
    }
}

#[test]
fn ubuntu_repositories_are_apt_sources_with_an_http_url() {
    let check = |value: Value| {
        let repos = object(json!({"nailgun": value}));
        validate_stored(OperatingSystem::Ubuntu, stored(&repos, "", ""))
    };
    for ok in [
        OWN_REPO,
        "https://mirror.example.com/ubuntu precise main restricted",
        "http://10.20.0.2:8080/repo ./",
    ] {
        check(json!(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, says) in [
        ("http://10.20.0.2:8080/ubuntu/fuelweb/x86_64", "suite"),
        ("rsync://10.20.0.2:/repo precise main", "not 'rsync://'"),
        ("ftp://10.20.0.2/ubuntu precise main", "not 'ftp://'"),
        ("10.20.0.2/ubuntu precise main", "not a URL"),
        (
            "http://10.20.0.2/ubuntu precise main\ndeb http://evil/ x y",
            "one line",
        ),
        ("", "blank"),
    ] {
        let (field, problem) = invalid_of(check(json!(bad)));
        assert_eq!(field, "repo_metadata.nailgun", "{bad}");
        assert!(problem.contains(says), "{bad}: {problem}");
    }
    let (field, problem) = invalid_of(check(json!(7)));
    assert_eq!(field, "repo_metadata.nailgun");
    assert!(problem.contains("string"), "{problem}");
}

#[test]
fn centos_repositories_are_one_http_url() {
    let check = |value: &str| {
        let repos = object(json!({"nailgun": value}));
        validate_stored(OperatingSystem::CentOS, stored(&repos, "", ""))
    };
    check("http://10.20.0.2:8080/2014.1-5.0/centos/x86_64").unwrap();
    check("https://mirror.example.com/centos/6.5/os/x86_64/").unwrap();
    let (field, problem) = invalid_of(check("http://10.20.0.2:8080/centos/x86_64 precise main"));
    assert_eq!(field, "repo_metadata.nailgun");
    assert!(problem.contains("baseurl"), "{problem}");
    let (_, problem) = invalid_of(check("rsync://10.20.0.2/centos"));
    assert!(problem.contains("http://"), "{problem}");
}

#[test]
fn repository_names_are_one_word() {
    for bad in ["", "my repo", "[x]", "a\nb"] {
        let repos = object(json!({ bad: OWN_REPO }));
        let (field, _) = invalid_of(validate_stored(
            OperatingSystem::Ubuntu,
            stored(&repos, "", ""),
        ));
        assert_eq!(field, "repo_metadata", "{bad:?}");
    }
    let mut many = Map::new();
    for i in 0..=MAX_REPOSITORIES {
        many.insert(format!("repo{i}"), json!(OWN_REPO));
    }
    let (_, problem) = invalid_of(validate_stored(
        OperatingSystem::Ubuntu,
        stored(&many, "", ""),
    ));
    assert!(problem.contains("more than"), "{problem}");
}

#[test]
fn nailgun_templates_are_valid_and_bad_templates_are_named() {
    nailgun_templates().validate().unwrap();
    master(Some("10.20.0.2")).validate().unwrap();
    master(Some("fuel.domain.tld")).validate().unwrap();
    master(None).validate().unwrap();
    for bad in ["10.20.0.2 x", "", "a/b"] {
        let (field, _) = invalid_of(master(Some(bad)).validate());
        assert_eq!(field, "ip", "{bad:?}");
    }

    let with = |change: fn(&mut SourceTemplates)| {
        let mut templates = nailgun_templates();
        change(&mut templates);
        templates.validate()
    };
    let (field, problem) = invalid_of(with(|t| {
        t.puppet_modules = "rsync://{master}/modules/".into()
    }));
    assert_eq!(field, "default_puppet.modules");
    assert!(problem.contains("{master}"), "{problem}");
    let (field, problem) = invalid_of(with(|t| t.repo_centos = "http://{master_ip/centos".into()));
    assert_eq!(field, "default_repo.centos");
    assert!(problem.contains("placeholder"), "{problem}");
    let (field, _) = invalid_of(with(|t| {
        t.puppet_manifests = "http://{master_ip}/m/".into()
    }));
    assert_eq!(field, "default_puppet.manifests");
    let (field, _) = invalid_of(with(|t| t.repo_ubuntu = "http://{master_ip}/ubuntu".into()));
    assert_eq!(field, "default_repo.ubuntu");
}

#[test]
fn render_fills_every_placeholder() {
    assert_eq!(
        render(
            "rsync://{master_ip}:/{version}/{version}/",
            "10.0.0.1",
            "5.1"
        ),
        "rsync://10.0.0.1:/5.1/5.1/"
    );
    assert_eq!(render("no placeholders", "x", "y"), "no placeholders");
}
