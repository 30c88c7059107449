//! The `orgsync` command line, as a user runs it. (Also makes `cargo test`
//! build the binary that the workspace's black-box tests start.)

use std::process::Command;

fn orgsync() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgsync"));
    cmd.env(
        "ORGSYNC__AUTH__JWT_SECRET",
        "cli-test-secret-cli-test-secret-0123",
    );
    cmd
}

#[test]
fn token_prints_a_bare_jwt_and_nothing_else() {
    for args in [
        vec!["token", "--platform"],
        vec![
            "token",
            "--org",
            "01a21454-c024-7042-8ad0-a0de52ba8b56",
            "--role",
            "owner",
        ],
    ] {
        let output = orgsync().args(&args).output().expect("run orgsync");
        assert!(output.status.success(), "{args:?}");
        let stdout = String::from_utf8(output.stdout).unwrap_or_default();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{stdout}");
        assert_eq!(lines[0].split('.').count(), 3, "{stdout}");
    }
}

#[test]
fn token_refuses_ambiguous_or_incomplete_requests() {
    for args in [
        vec!["token"],
        vec!["token", "--org", "01a21454-c024-7042-8ad0-a0de52ba8b56"],
        vec![
            "token",
            "--platform",
            "--org",
            "01a21454-c024-7042-8ad0-a0de52ba8b56",
            "--role",
            "owner",
        ],
        vec!["token", "--org", "not-a-uuid", "--role", "owner"],
        vec![
            "token",
            "--org",
            "01a21454-c024-7042-8ad0-a0de52ba8b56",
            "--role",
            "god",
        ],
    ] {
        let output = orgsync().args(&args).output().expect("run orgsync");
        assert!(!output.status.success(), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
