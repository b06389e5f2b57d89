//! DynamoDB as the commands and the handler use it: one BatchWriteItem call (at most 25 requests)
//! that says which of its requests came back in UnprocessedItems (resending them is `retry`'s job),
//! one PutItem that never replaces a newer version, and whether a table exists.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};

use crate::error::Error;
use crate::progress;

/// BatchWriteItem takes at most 25 requests per call.
pub const MAX_BATCH_WRITE: usize = 25;

/// A table's key attribute names: partition key, and sort key when it has one.
pub type KeyNames<'a> = (&'a str, Option<&'a str>);

/// The key attribute values of a put or delete request, by the table's key attribute names.
fn key_of<'a>(
    request: &'a WriteRequest,
    names: KeyNames<'_>,
) -> Option<(&'a AttributeValue, Option<&'a AttributeValue>)> {
    let attrs: &HashMap<String, AttributeValue> = match (&request.put_request, &request.delete_request) {
        (Some(put), _) => &put.item,
        (None, Some(delete)) => &delete.key,
        (None, None) => return None,
    };
    let sort = match names.1 {
        Some(n) => Some(attrs.get(n)?),
        None => None,
    };
    Some((attrs.get(names.0)?, sort))
}

/// Sends `requests` (distinct keys, at most 25) to `table` in one BatchWriteItem call and returns
/// the indices of those DynamoDB left unprocessed, matched back by their key (`key_names`: the
/// table's partition and sort key attributes).
pub async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key_names: KeyNames<'_>,
    requests: Vec<WriteRequest>,
) -> Result<Vec<usize>, Error> {
    let keys: Vec<Option<(AttributeValue, Option<AttributeValue>)>> =
        requests.iter().map(|r| key_of(r, key_names).map(|(a, b)| (a.clone(), b.cloned()))).collect();
    let out = client
        .batch_write_item()
        .request_items(table, requests)
        .send()
        .await
        .map_err(|e| Error::aws("BatchWriteItem", table, e))?;
    let left = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
    if left.is_empty() {
        return Ok(Vec::new());
    }
    let left: Vec<(&AttributeValue, Option<&AttributeValue>)> =
        left.iter().filter_map(|r| key_of(r, key_names)).collect();
    Ok(keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.as_ref().is_some_and(|(a, b)| left.iter().any(|(x, y)| *x == a && *y == b.as_ref())))
        .map(|(i, _)| i)
        .collect())
}

/// Puts `item` into `table` unless the table holds an item of its key whose `version` attribute is
/// above `value` (a number): true when written, false when the condition kept a newer version.
/// BatchWriteItem takes no conditions, so ordered writes are one PutItem each; a failed condition
/// is the expected outcome for a version that arrives late, not an error.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>
pub async fn put_unless_newer(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: HashMap<String, AttributeValue>,
    key: &str,
    version: &str,
    value: &str,
) -> Result<bool, Error> {
    let sent = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#k) OR #v <= :v")
        .expression_attribute_names("#k", key)
        .expression_attribute_names("#v", version)
        .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
        .send()
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
        Err(e) => Err(Error::aws("PutItem", table, e)),
    }
}

/// Makes sure `table` expires items by `attribute` (DynamoDB's TTL). CloudFormation sets it from
/// the template's TimeToLiveSpecification; where the table says otherwise — TTL turned off by hand,
/// or an emulator that does not apply that property — it is set here, and said.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html>
pub async fn ensure_ttl(client: &aws_sdk_dynamodb::Client, table: &str, attribute: &str) -> Result<(), Error> {
    use aws_sdk_dynamodb::types::{TimeToLiveSpecification, TimeToLiveStatus};
    let out = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeTimeToLive", table, e))?;
    let now = out.time_to_live_description();
    let status = now.and_then(|d| d.time_to_live_status()).cloned();
    let on = matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if on && now.and_then(|d| d.attribute_name()) == Some(attribute) {
        return Ok(());
    }
    progress::status(format!(
        "table {table}: TTL was {} where the stack says {attribute}; enabling it",
        status.as_ref().map_or("unknown", |s| s.as_str())
    ));
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(|e| Error::failed(format!("building the TTL of {table}: {e}"), "report this as a bug"))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| Error::aws("UpdateTimeToLive", table, e))?;
    Ok(())
}

/// True when `table` exists (DescribeTable), false on ResourceNotFoundException.
pub async fn table_exists(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<bool, Error> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
        Err(e) => Err(Error::aws("DescribeTable", table, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn put(id: &str) -> WriteRequest {
        let item = HashMap::from([("U".to_string(), s("u")), ("I".to_string(), s(id)), ("M".to_string(), s("m"))]);
        WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().expect("put")).build()
    }

    fn delete(id: &str) -> WriteRequest {
        let key = HashMap::from([("U".to_string(), s("u")), ("I".to_string(), s(id))]);
        WriteRequest::builder()
            .delete_request(DeleteRequest::builder().set_key(Some(key)).build().expect("delete"))
            .build()
    }

    /// DynamoDB hands back request 2 of 3 unprocessed: its index comes back, for puts and deletes.
    #[tokio::test]
    async fn unprocessed_requests_are_matched_back_by_key() {
        for (requests, left) in
            [(vec![put("1"), put("2"), put("3")], put("2")), (vec![delete("1"), delete("2"), delete("3")], delete("2"))]
        {
            let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
                .match_requests(|r| r.request_items().and_then(|m| m.get("T")).is_some_and(|reqs| reqs.len() == 3))
                .then_output(move || {
                    BatchWriteItemOutput::builder().unprocessed_items("T", vec![left.clone()]).build()
                });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
            assert_eq!(batch_write(&client, "T", ("U", Some("I")), requests).await.expect("call succeeds"), vec![1]);
            assert_eq!(rule.num_calls(), 1);
        }
    }
}
