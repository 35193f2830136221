//! NEWT as its clients speak it: request sequences written from NEWT's public API
//! description (not through `NewtConnector`), sent as raw HTTP to a real gateway.
//!
//! NEWT: `POST <base>/auth` (or `/login`) with the form fields `username` and `password`
//! logs in and answers `{"auth": true, "username", "session_lifetime", "newt_sessionid"}`
//! with the cookie `newt_sessionid`; `GET` of the same URL answers the session's status
//! `{"auth": true|false, …}`; `DELETE` logs out. Clients add or leave out the trailing slash.
mod common;

use std::time::Duration;

use common::{Gateway, MACHINE, Opts, PASSWORD, USER};

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[test]
fn login_status_and_logout_under_every_name_with_or_without_slash() {
    let gw = Gateway::start(Opts::default());
    let form = format!("username={USER}&password={}", PASSWORD.replace(' ', "+"));
    for (login, status_url, logout) in [
        ("/newt/auth/", "/newt/login/", "/newt/login"),
        ("/newt/login", "/newt/login", "/newt/auth/"),
        ("/newt/login/", "/newt/auth", "/newt/login/"),
        ("/newt/auth", "/newt/auth/", "/newt/auth"),
    ] {
        // Status before logging in: a parsable answer saying "not logged in".
        let (status, body) = gw.raw("GET", status_url, &[], b"");
        assert_eq!(status, 200, "GET {status_url}: {body}");
        assert_eq!(json(&body)["auth"], false, "{body}");
        let t = Duration::from_secs(30);
        let (status, head, body) = gw.raw_full("POST", login, &[FORM], form.as_bytes(), t);
        assert_eq!(status, 200, "POST {login}: {body}");
        let v = json(&body);
        assert_eq!(
            (v["auth"].as_bool(), v["username"].as_str()),
            (Some(true), Some(USER))
        );
        assert!(v["session_lifetime"].as_u64().unwrap() > 0, "{body}");
        let sid = v["newt_sessionid"].as_str().unwrap().to_string();
        assert!(head.contains(&format!(
            "set-cookie: newt_sessionid={}",
            sid.to_ascii_lowercase()
        )));
        let cookie = format!("newt_sessionid={sid}");
        let (status, body) = gw.raw("GET", status_url, &[("Cookie", &cookie)], b"");
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["auth"], true, "GET {status_url}: {body}");
        assert_eq!(json(&body)["username"], USER, "{body}");
        let (status, body) = gw.raw("DELETE", logout, &[("Cookie", &cookie)], b"");
        assert_eq!(status, 200, "DELETE {logout}: {body}");
        assert_eq!(json(&body)["auth"], false, "{body}");
        let (_, body) = gw.raw("GET", status_url, &[("Cookie", &cookie)], b"");
        assert_eq!(json(&body)["auth"], false, "logged out: {body}");
    }
    // A wrong password: 401 with a parsable answer.
    let (status, body) = gw.raw(
        "POST",
        "/newt/login/",
        &[FORM],
        b"username=alice&password=no",
    );
    assert_eq!(status, 401);
    assert_eq!(json(&body)["auth"], false);
}

#[test]
fn commands_and_files_with_trailing_slashes_and_json_errors() {
    let gw = Gateway::start(Opts::default());
    let sid = gw.raw_login();
    let cookie = format!("newt_sessionid={sid}");
    let c = ("Cookie", cookie.as_str());
    let (status, body) = gw.raw(
        "POST",
        &format!("/newt/command/{MACHINE}/"),
        &[c, FORM],
        b"executable=/bin/echo+hello",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["output"], "hello\n", "{body}");
    std::fs::write(gw.home.join("f.txt"), "content").unwrap();
    let home = gw.home.display().to_string();
    let dir_url = format!("/newt/file/{MACHINE}{home}/");
    let (status, body) = gw.raw("GET", &dir_url, &[c], b"");
    assert_eq!(status, 200, "{body}");
    let names: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"f.txt".to_string()), "{names:?}");
    let (status, body) = gw.raw("GET", &format!("{dir_url}f.txt?view=read"), &[c], b"");
    assert_eq!((status, body.as_str()), (200, "content"));
    // Unknown routes and methods still answer JSON a client can parse.
    for (method, url) in [
        ("GET", "/newt/nope"),
        ("GET", "/elsewhere"),
        ("GET", &format!("/newt/command/{MACHINE}") as &str),
    ] {
        let (status, body) = gw.raw(method, url, &[c], b"");
        assert!(status == 404 || status == 405, "{method} {url}: {status}");
        assert_eq!(json(&body)["status"], "ERROR", "{method} {url}: {body}");
    }
}
