//! Who may run the function here: the function's role trusts Lambda and, only when named, the
//! principals of `deploy --local-principal` (on an emulator the identity deploying, by default).
//! `stream local` against a stack that names none refuses with the flag that grants it.

use serde_json::Value;

use crate::common::{World, assert_error_lines};

/// The principals of the role's trust policy, as IAM has it.
async fn trusted(w: &World, clients: &stream::aws::Clients) -> Vec<Value> {
    let resources = clients.cfn.describe_stack_resources().stack_name(&w.stack).send().await.expect("resources");
    let role = resources
        .stack_resources()
        .iter()
        .find(|r| r.logical_resource_id() == Some("FunctionRole"))
        .and_then(|r| r.physical_resource_id())
        .expect("role")
        .to_string();
    let got = clients.iam.get_role().role_name(&role).send().await.expect("role");
    let document = got.role().and_then(|r| r.assume_role_policy_document()).expect("trust policy");
    let text = urlencoding_decode(document);
    let policy: Value = serde_json::from_str(&text).expect("policy JSON");
    policy["Statement"].as_array().expect("statements").iter().map(|s| s["Principal"].clone()).collect()
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("hex"));
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf8")
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn only_named_principals_may_run_the_function_here() {
    let w = World::new("trust", "ca-central-1");
    let clients = w.clients().await;
    let me = clients.sts.get_caller_identity().send().await.expect("me").arn().expect("arn").to_string();
    // On an emulator, the identity deploying is granted by default.
    w.run(&["deploy"], 0);
    let lambda = serde_json::json!({"Service": "lambda.amazonaws.com"});
    assert_eq!(trusted(&w, &clients).await, [lambda.clone(), serde_json::json!({"AWS": [me.as_str()]})]);
    let (status, _) = w.run(&["status", "--output", "json"], 0);
    let status: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(status["parameters"]["LocalPrincipals"], me.as_str());

    // '' removes the grant, and stream local refuses before any run. (moto does not update a
    // role's trust policy on a stack update: the parameter is checked here, IAM at a create below.)
    w.run(&["deploy", "--local-principal", "", "--yes"], 0);
    let stack = stream::stack::find(&clients, &w.stack).await.expect("describe").expect("stack");
    assert_eq!(stream::stack::parameter(&stack, "LocalPrincipals"), Some(""));
    let (_, err) = w.run(&["local", "--until-idle"], 2);
    assert_error_lines(&err, "lets no one run its function here: its role trusts only Lambda", "--local-principal me");
    let (_, err) = w.run(&["redrive", "--local"], 2);
    assert_error_lines(&err, "lets no one run its function here", "--local-principal me");

    // Named again (another principal and me): stream local runs.
    let other = "arn:aws:iam::123456789012:role/dev";
    w.run(&["deploy", "--local-principal", other, "--local-principal", "me", "--yes"], 0);
    let stack = stream::stack::find(&clients, &w.stack).await.expect("describe").expect("stack");
    assert_eq!(stream::stack::parameter(&stack, "LocalPrincipals"), Some(format!("{other},{me}").as_str()));
    w.run(&["produce", "--count", "5"], 0);
    let (out, _) = w.run(&["local", "--until-idle"], 0);
    assert!(out.contains("processed 5 records"), "{out}");
    w.run(&["destroy", "--yes"], 0);

    // A stack made without the grant: its role trusts Lambda only.
    let bare = World::new("trust-none", "ca-central-1");
    bare.run(&["deploy", "--local-principal", ""], 0);
    assert_eq!(trusted(&bare, &clients).await, std::slice::from_ref(&lambda));
    let (_, err) = bare.run(&["local", "--until-idle"], 2);
    assert_error_lines(&err, "lets no one run its function here", "--local-principal me");
    // And one made for two principals trusts both.
    let two = World::new("trust-two", "ca-central-1");
    two.run(&["deploy", "--local-principal", other, "--local-principal", "me"], 0);
    assert_eq!(trusted(&two, &clients).await, [lambda, serde_json::json!({"AWS": [other, me.as_str()]})]);
    bare.run(&["destroy", "--yes"], 0);
    two.run(&["destroy", "--yes"], 0);
}
