//! OCPI peer records (opaque JSON owned by the `ocpi` crate) and small meta values (the
//! configuration fingerprint and similar bookkeeping).

use crate::keys::{idx, tree};
use crate::{Error, Store, decode, encode};

impl Store {
    /// Stores a peer record.
    pub fn put_peer(&self, id: &str, peer: &serde_json::Value) -> Result<(), Error> {
        self.tree(idx::PEERS)
            .insert(id.as_bytes(), encode(tree::PEERS, peer)?)?;
        Ok(())
    }

    /// All peer records.
    pub fn peers(&self) -> Result<Vec<(String, serde_json::Value)>, Error> {
        self.tree(idx::PEERS)
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode(tree::PEERS, &v)?,
                ))
            })
            .collect()
    }

    /// Removes a peer and everything still queued or parked for it.
    pub fn delete_peer(&self, id: &str) -> Result<(), Error> {
        self.tree(idx::PEERS).remove(id.as_bytes())?;
        self.drop_outbox(id)
    }

    /// A meta value (small bookkeeping such as the configuration fingerprint).
    pub fn meta(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .tree(idx::META)
            .get(format!("m:{key}"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Sets a meta value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), Error> {
        self.tree(idx::META)
            .insert(format!("m:{key}"), value.as_bytes())?;
        Ok(())
    }
}
