//! kube-rs against the embedded server: both discovery modes see the same API, from the
//! kubeconfig the server writes.

mod common;

use common::{create_widget_crd, TestServer};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};

async fn client(s: &TestServer) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(&s.server.kubeconfig_yaml()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// `(group, version, plural, namespaced, subresources)` of every resource discovered.
fn summary(d: &Discovery) -> Vec<(String, String, String, bool, Vec<String>)> {
    let mut out = Vec::new();
    for g in d.groups() {
        for v in g.versions() {
            for (ar, caps) in g.versioned_resources(v) {
                let mut subs: Vec<String> = caps
                    .subresources
                    .iter()
                    .map(|(sr, _)| sr.plural.clone())
                    .collect();
                subs.sort();
                out.push((
                    ar.group,
                    ar.version,
                    ar.plural,
                    caps.scope == Scope::Namespaced,
                    subs,
                ));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_and_legacy_discovery_agree() {
    let s = TestServer::start().await;
    create_widget_crd(&s).await;
    let c = client(&s).await;
    let legacy = Discovery::new(c.clone())
        .run()
        .await
        .expect("legacy discovery");
    let aggregated = Discovery::new(c)
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let (l, a) = (summary(&legacy), summary(&aggregated));
    assert_eq!(l, a);
    let widgets = a
        .iter()
        .find(|r| r.2 == "widgets")
        .expect("the new CRD is discovered");
    assert_eq!(widgets.4, vec!["scale".to_string(), "status".to_string()]);
    assert!(a
        .iter()
        .any(|r| r.0.is_empty() && r.2 == "configmaps" && r.3));
    assert!(a.iter().any(|r| r.0 == "apps" && r.2 == "deployments"));
    s.stop().await;
}
