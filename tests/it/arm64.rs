//! arm64 (Graviton) functions: `deploy --arch` picks the build for the architecture or says which
//! command makes it (before any call); on moto, a stack deployed with the arm64 build runs it under
//! `stream local` emulated (qemu-user), as Lambda would on Graviton, and writes exactly what the
//! x86_64 build writes; changing the architecture of a deployed stack is an ordinary update.

use crate::common::{self, DEAD_ENDPOINT, assert_error_lines, run_plain};

#[test]
fn deploy_arch_without_that_build_is_refused_before_any_call() {
    let env = [("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", "us-east-1")];
    // The test binary is an x86_64 build with no stream-arm64 beside it.
    let (_, err) = run_plain(&["deploy", "--arch", "arm64", "--endpoint-url", DEAD_ENDPOINT], &env, 2);
    let beside = std::path::Path::new(common::bin()).with_file_name("stream-arm64");
    assert_error_lines(
        &err,
        &format!("no arm64 build of stream beside {} (looked for {})", common::bin(), beside.display()),
        "scripts/build --arch arm64",
    );
    // A --bootstrap of the other architecture than --arch says so.
    let (_, err) = run_plain(
        &["deploy", "--arch", "arm64", "--bootstrap", common::bin(), "--endpoint-url", DEAD_ENDPOINT],
        &env,
        2,
    );
    assert_error_lines(
        &err,
        &format!("{} is built for x86_64, not arm64", common::bin()),
        "give --arch x86_64, or a build for arm64",
    );
}
