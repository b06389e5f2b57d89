//! DynamoDB as the commands and the handler use it: one BatchWriteItem call (at most 25 requests)
//! that says which of its requests came back in UnprocessedItems (resending them is `retry`'s job),
//! and whether a table exists.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};

use crate::error::Error;

/// BatchWriteItem takes at most 25 requests per call.
pub const MAX_BATCH_WRITE: usize = 25;

/// The key attribute values of a put or delete request, by the table's key attribute names.
fn key_of<'a>(request: &'a WriteRequest, names: (&str, &str)) -> Option<(&'a AttributeValue, &'a AttributeValue)> {
    let attrs: &HashMap<String, AttributeValue> = match (&request.put_request, &request.delete_request) {
        (Some(put), _) => &put.item,
        (None, Some(delete)) => &delete.key,
        (None, None) => return None,
    };
    Some((attrs.get(names.0)?, attrs.get(names.1)?))
}

/// Sends `requests` (distinct keys, at most 25) to `table` in one BatchWriteItem call and returns
/// the indices of those DynamoDB left unprocessed, matched back by their key (`key_names`: the
/// table's partition and sort key attributes).
pub async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key_names: (&str, &str),
    requests: Vec<WriteRequest>,
) -> Result<Vec<usize>, Error> {
    let keys: Vec<Option<(AttributeValue, AttributeValue)>> =
        requests.iter().map(|r| key_of(r, key_names).map(|(a, b)| (a.clone(), b.clone()))).collect();
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
    let left: Vec<(&AttributeValue, &AttributeValue)> = left.iter().filter_map(|r| key_of(r, key_names)).collect();
    Ok(keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.as_ref().is_some_and(|(a, b)| left.iter().any(|(x, y)| *x == a && *y == b)))
        .map(|(i, _)| i)
        .collect())
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
            assert_eq!(batch_write(&client, "T", ("U", "I"), requests).await.expect("call succeeds"), vec![1]);
            assert_eq!(rule.num_calls(), 1);
        }
    }
}
