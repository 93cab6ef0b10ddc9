use super::*;

/// A multinode cast: node 1 controller (critical), node 2 compute+cinder, node 3 compute.
fn cast() -> Cast {
    let entry = |uid: &str, name: &str, role: &str, priority: u64, critical: bool| {
        json!({"uid": uid, "name": name, "fqdn": format!("{name}.domain.tld"), "role": role,
               "priority": priority, "fail_if_error": critical, "status": "provisioned"})
    };
    Cast::parse(&json!({
        "api_version": "1", "method": "deploy", "respond_to": "deploy_resp",
        "args": {"task_uuid": "t-1", "deployment_info": [
            entry("1", "node-1", "controller", 100, true),
            entry("2", "node-2", "cinder", 300, false),
            entry("2", "node-2", "compute", 400, false),
            entry("3", "node-3", "compute", 200, false),
        ]}
    }))
    .expect("a cast")
}

fn scenario() -> Scenario {
    Scenario {
        steps: 3,
        ..Default::default()
    }
}

/// (uid, status, progress) of every node report, in order.
fn node_reports(replies: &[Value]) -> Vec<(String, String, u64)> {
    replies
        .iter()
        .filter_map(|r| r["nodes"].get(0))
        .map(|n| {
            (
                n["uid"].as_str().unwrap_or_default().to_string(),
                n["status"].as_str().unwrap_or_default().to_string(),
                n["progress"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn success_deploys_by_priority_and_ends_ready() {
    let replies = replies(&cast(), &scenario(), 1);
    let reports = node_reports(&replies);
    // Priority order: node 1 (100), node 3 (200), node 2 cinder (300), node 2 compute (400).
    let firsts: Vec<&str> = reports.iter().map(|r| r.0.as_str()).collect();
    let order: Vec<&str> = firsts.iter().fold(Vec::new(), |mut seen, uid| {
        if seen.last() != Some(uid) {
            seen.push(uid);
        }
        seen
    });
    assert_eq!(order, ["1", "3", "2"]);
    for uid in ["1", "2", "3"] {
        let last = reports.iter().rev().find(|r| r.0 == uid).expect("reported");
        assert_eq!((last.1.as_str(), last.2), ("ready", 100), "node {uid}");
        // `ready` exactly once, at its end.
        assert_eq!(
            reports
                .iter()
                .filter(|r| r.0 == uid && r.1 == "ready")
                .count(),
            1
        );
    }
    assert_eq!(
        replies.last(),
        Some(&json!({"task_uuid": "t-1", "status": "ready", "progress": 100}))
    );
}

#[test]
fn progress_of_a_node_never_goes_down_and_a_multi_role_node_combines_its_roles() {
    let replies = replies(&cast(), &scenario(), 7);
    let reports = node_reports(&replies);
    for uid in ["1", "2", "3"] {
        let progress: Vec<u64> = reports.iter().filter(|r| r.0 == uid).map(|r| r.2).collect();
        assert!(
            progress.windows(2).all(|w| w[0] <= w[1]),
            "node {uid}: {progress:?}"
        );
    }
    // Node 2 has two roles: it is still deploying at 50 after its first role.
    assert!(reports.contains(&("2".into(), "deploying".into(), 50)));
    assert!(reports
        .iter()
        .filter(|r| r.0 == "2" && r.1 == "deploying")
        .all(|r| r.2 < 100));
}

#[test]
fn the_same_seed_gives_the_same_replies_and_another_seed_may_not() {
    assert_eq!(
        replies(&cast(), &scenario(), 42),
        replies(&cast(), &scenario(), 42)
    );
    let differs = (0..20)
        .any(|seed| replies(&cast(), &scenario(), seed) != replies(&cast(), &scenario(), 42));
    assert!(differs, "the seed jitters the progress");
}

#[test]
fn a_failing_node_is_reported_in_error_and_ends_the_task_in_error() {
    let scenario = Scenario {
        fail_node: Some("node-3".into()),
        ..scenario()
    };
    let replies = replies(&cast(), &scenario, 1);
    let reports = node_reports(&replies);
    assert!(reports.contains(&("3".into(), "error".into(), 100)));
    let failed = replies
        .iter()
        .find(|r| r["nodes"][0]["status"] == "error")
        .expect("error report");
    assert_eq!(failed["nodes"][0]["error_type"], "deploy");
    // node-3 is not critical: node 2 still deploys afterwards.
    assert!(reports.iter().any(|r| r.0 == "2" && r.1 == "ready"));
    assert_eq!(
        replies.last(),
        Some(
            &json!({"task_uuid": "t-1", "status": "error", "progress": 100,
                     "error": "Some error occured on nodes [\"3\"]"})
        )
    );
}

#[test]
fn a_failing_critical_node_stops_the_later_groups() {
    let scenario = Scenario {
        fail_node: Some("node-1".into()),
        ..scenario()
    };
    let replies = replies(&cast(), &scenario, 1);
    let reports = node_reports(&replies);
    assert!(
        reports.iter().all(|r| r.0 == "1"),
        "nothing after the controller: {reports:?}"
    );
    assert_eq!(
        replies.last().map(|r| r["status"].clone()),
        Some(json!("error"))
    );
}

#[test]
fn an_offline_node_is_reported_offline_and_the_task_fails() {
    let scenario = Scenario {
        offline_node: Some("node-2".into()),
        ..scenario()
    };
    let replies = replies(&cast(), &scenario, 1);
    let offline = replies
        .iter()
        .find(|r| r["nodes"][0]["online"] == false)
        .expect("an offline report");
    assert_eq!(offline["nodes"][0]["uid"], "2");
    // Its second role is not run.
    let reports = node_reports(&replies);
    assert!(!reports.iter().any(|r| r.0 == "2" && r.1 == "ready"));
    assert_eq!(
        replies.last().map(|r| r["status"].clone()),
        Some(json!("error"))
    );
}

#[test]
fn an_overall_error_ends_the_task_with_its_text_after_the_first_group() {
    let scenario = Scenario {
        error: Some("Timeout of deployment is exceeded.".into()),
        ..scenario()
    };
    let replies = replies(&cast(), &scenario, 1);
    assert_eq!(
        replies.last(),
        Some(
            &json!({"task_uuid": "t-1", "status": "error", "error": "Timeout of deployment is exceeded."})
        )
    );
    assert!(node_reports(&replies).iter().all(|r| r.0 == "1"));
}

#[test]
fn a_stall_answers_nothing() {
    let scenario = Scenario {
        stall: true,
        ..scenario()
    };
    assert!(replies(&cast(), &scenario, 1).is_empty());
}

#[test]
fn what_is_not_a_deploy_cast_is_refused_with_the_reason() {
    let err = Cast::parse(&json!({"method": "provision", "args": {}})).unwrap_err();
    assert!(err.to_string().contains("provision"), "{err}");
    let err = Cast::parse(&json!({"method": "deploy", "args": {"task_uuid": "x"}})).unwrap_err();
    assert!(err.to_string().contains("deployment_info"), "{err}");
    let err = Cast::parse(&json!({"method": "deploy", "args": {"task_uuid": "x",
        "deployment_info": [{"uid": "1", "role": "compute"}]}}))
    .unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");
}

#[test]
fn ruby_inspect_quotes_like_ruby() {
    assert_eq!(ruby_inspect(&["3".into(), "7".into()]), r#"["3", "7"]"#);
}
