//! The producer IAM user's access key: made through IAM by `deploy` and written only to a local
//! credentials profile named after the stack (mode 0600, via `credentials`), never into the stack
//! or onto the terminal; deleted by `destroy`. IAM allows two keys per user: stale ones go first.

use crate::aws::Clients;
use crate::credentials::{self, AccessKey};
use crate::error::Error;

/// Makes sure the producer profile holds a live key of the producer user; returns the profile and
/// whether a new key was made. IAM allows two keys per user: stale ones are deleted first.
pub async fn ensure(clients: &Clients, stack_name: &str, user: &str) -> Result<(String, bool), Error> {
    let path = credentials::credentials_path()?;
    let profile = stack_name.to_string();
    let current = credentials::profile_key_id(&path, &profile)?;
    let keys = list_keys(clients, user).await?;
    if current.as_ref().is_some_and(|c| keys.contains(c)) {
        return Ok((profile, false));
    }
    for stale in &keys {
        delete_key(clients, user, stale).await?;
    }
    let created = clients
        .iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| Error::aws("CreateAccessKey", user, e))?;
    let key = created
        .access_key
        .map(|k| AccessKey { id: k.access_key_id, secret: k.secret_access_key })
        .ok_or_else(|| Error::failed(format!("CreateAccessKey for {user} returned no key"), "deploy again"))?;
    credentials::write_profile(&path, &profile, &key)?;
    Ok((profile, true))
}

/// The user's access key ids.
pub async fn list_keys(clients: &Clients, user: &str) -> Result<Vec<String>, Error> {
    let out = clients
        .iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| Error::aws("ListAccessKeys", user, e))?;
    Ok(out.access_key_metadata.into_iter().filter_map(|k| k.access_key_id).collect())
}

/// Deletes one access key of the user.
pub async fn delete_key(clients: &Clients, user: &str, key_id: &str) -> Result<(), Error> {
    clients
        .iam
        .delete_access_key()
        .user_name(user)
        .access_key_id(key_id)
        .send()
        .await
        .map_err(|e| Error::aws("DeleteAccessKey", format!("{user}/{key_id}"), e))?;
    Ok(())
}
