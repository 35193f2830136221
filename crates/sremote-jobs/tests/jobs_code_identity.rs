//! A job's identity includes its code, through a real sshd: a Python module file on the
//! host's PYTHONPATH, a plugin executable and shipped source that change give a new job
//! with the new result; unchanged code reattaches to the same job (issue 12: `submit
//! --wait calc multiply 10 7` used to return 70 after `multiply` became `a*b+1000`).
use serde_json::Value;
use sremote_core::RemoteClient;
use sremote_core::protocol::ShippedModule;
use sremote_jobs::{JobStore, JobsExt};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;

const CALC: &str = "def multiply(a, b):\n    return a * b\n";
const CALC_CHANGED: &str = "def multiply(a, b):\n    return a * b + 1000\n";

fn plugin(value: i64) -> String {
    format!("#!/bin/sh\ncat >/dev/null\nprintf '{{\"ok\": {value}}}\\n'\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_code_is_a_new_job_and_unchanged_code_reattaches() {
    let sshd = match Sshd::start() {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => return eprintln!("skipped: {why}"),
        Err(e) => panic!("{e}"),
    };
    let db = tempfile::tempdir().unwrap();
    let store = JobStore::open(db.path().join("jobs.sqlite3")).unwrap();
    let ssh = SshConnector::builder()
        .config_file(&sshd.ssh_config)
        .connect(&sshd.alias)
        .await
        .unwrap();
    let client = RemoteClient::new(ssh);
    let pydir = sshd.home.join("pymods");
    std::fs::create_dir(&pydir).unwrap();
    client.add_remote_path(pydir.to_str().unwrap());
    let module_file = pydir.join("calc.py");

    // 1. A Python module on the host's PYTHONPATH, called by name.
    let submit = |client: &RemoteClient<SshConnector>| {
        client
            .submit(client.call::<Value>("calc", "multiply").arg(10).arg(7))
            .store(store.clone())
    };
    std::fs::write(&module_file, CALC).unwrap();
    let first = submit(&client).await.unwrap();
    assert!(!first.reattached());
    assert_eq!(first.result::<i64>().await.unwrap().value, 70);
    let same = submit(&client).await.unwrap();
    assert!(same.reattached(), "unchanged code must reattach");
    assert_eq!(same.id(), first.id());

    std::fs::write(&module_file, CALC_CHANGED).unwrap();
    let changed = submit(&client).await.unwrap();
    assert!(!changed.reattached(), "changed code must be a new job");
    assert_ne!(changed.id(), first.id());
    assert_eq!(changed.result::<i64>().await.unwrap().value, 1070);
    let again = submit(&client).await.unwrap();
    assert_eq!(again.id(), changed.id());
    // Back to the first content: content-addressed, so the first job again.
    std::fs::write(&module_file, CALC).unwrap();
    assert_eq!(submit(&client).await.unwrap().id(), first.id());

    // 2. A plugin executable: its file's hash.
    let plugin_file = db.path().join("calcplug");
    std::fs::write(&plugin_file, plugin(1)).unwrap();
    client
        .install_module("calcplug", &plugin_file)
        .await
        .unwrap();
    let plug = || {
        client
            .submit(client.call::<Value>("calcplug", "value"))
            .store(store.clone())
    };
    let p1 = plug().await.unwrap();
    assert_eq!(p1.result::<i64>().await.unwrap().value, 1);
    assert_eq!(plug().await.unwrap().id(), p1.id());
    std::fs::write(&plugin_file, plugin(2)).unwrap();
    client
        .install_module("calcplug", &plugin_file)
        .await
        .unwrap();
    let p2 = plug().await.unwrap();
    assert_ne!(p2.id(), p1.id());
    assert_eq!(p2.result::<i64>().await.unwrap().value, 2);

    // 3. The endpoint's own modules: the same endpoint, the same job.
    let own = || {
        client
            .submit(client.call::<Value>("os", "getenv").arg("HOME"))
            .store(store.clone())
    };
    let o1 = own().await.unwrap();
    assert_eq!(own().await.unwrap().id(), o1.id());
    let host_code: Value = client
        .call::<Value>("sys", "code_id")
        .arg("os")
        .await
        .unwrap()
        .value;
    assert_eq!(host_code["kind"], "endpoint", "{host_code}");
    assert!(
        host_code["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("endpoint:{}:", sremote_core::protocol::VERSION)),
        "{host_code}"
    );
    let py: Value = client
        .call::<Value>("sys", "code_id")
        .arg("calc")
        .await
        .unwrap()
        .value;
    assert_eq!(py["kind"], "python-file", "{py}");
    assert_eq!(
        py["path"].as_str().unwrap(),
        module_file.to_str().unwrap(),
        "{py}"
    );

    // 4. Shipped source: each module's hash; the job's request on the host keeps the
    //    whole source (it runs later, maybe after the host's code cache was cleaned).
    let shipped = |source: &str| {
        client
            .submit(client.call::<Value>("shipmod", "f"))
            .code([ShippedModule::new("shipmod", source)])
            .store(store.clone())
    };
    let s1 = shipped("def f():\n    return 1\n").await.unwrap();
    let s2 = shipped("def f():\n    return 2\n").await.unwrap();
    assert_ne!(s1.id(), s2.id());
    assert_eq!(
        shipped("def f():\n    return 1\n").await.unwrap().id(),
        s1.id()
    );
    let request = std::fs::read_to_string(
        sshd.home
            .join(".sremote/jobs")
            .join(s2.id())
            .join("request.json"),
    )
    .unwrap();
    let request: Value = serde_json::from_str(&request).unwrap();
    assert_eq!(
        request["code"][0]["source"], "def f():\n    return 2\n",
        "{request}"
    );
    // A module named by hash only cannot be a job.
    let mut hash_only = ShippedModule::new("shipmod", "def f():\n    return 3\n");
    hash_only.source = None;
    let err = client
        .submit(client.call::<Value>("shipmod", "f"))
        .code([hash_only])
        .store(store.clone())
        .await
        .unwrap_err();
    assert!(
        err.is_usage()
            && err.message().contains("has no source")
            && err.message().contains("shipmod"),
        "{err}"
    );
}
